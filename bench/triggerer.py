"""Triggerer footprint: N triggers in one event loop (as Airflow's triggerer runs them) polling
an emulator in another process every second, ours beside the http provider's HttpSensorTrigger.

Ours: ``JobStatusTrigger`` over running jobs (half useapi v2, half WriteText: two connections).
Theirs: ``HttpSensorTrigger`` on the same useapi v2 status route, for ids the emulator does not know
(it keeps polling while the answer is 404): one GET with a bearer header per poll, like ours.

Each side runs in a fresh process (``--side ours|http``) so that memory and CPU are not shared.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

from _harness import Clock, EmulatorProcess, cpu_seconds, emit, quiet_logging, rss_bytes


async def drive(trigger: Any, events: list[Any]) -> None:
    """What the triggerer does with each trigger: iterate ``run()`` until its event."""
    async for event in trigger.run():
        events.append(event)
        return


def our_triggers(emu: EmulatorProcess, n: int, interval: float) -> Callable[[], list[Any]]:
    from airflow_provider_cancel.triggers.status import JobStatusTrigger

    half = n // 2
    jobs = [("bench_useapi", j) for j in emu.create_jobs("useapi_v2", half)]
    jobs += [("bench_writetext", j) for j in emu.create_jobs("writetext", n - half)]
    return lambda: [
        JobStatusTrigger(conn_id=conn_id, job_ids=[job_id], poll_interval=interval)
        for conn_id, job_id in jobs
    ]


def http_triggers(emu: EmulatorProcess, n: int, interval: float) -> Callable[[], list[Any]]:
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    return lambda: [
        HttpSensorTrigger(
            endpoint=f"v2/jobs/?jobid=missing-{i}",
            http_conn_id="bench_http",
            method="GET",
            poke_interval=interval,
        )
        for i in range(n)
    ]


async def warm_up(side: str, emu: EmulatorProcess) -> None:
    """Import and initialise everything once (in a throwaway loop), as a running triggerer has."""
    events: list[Any] = []
    if side == "ours":
        from airflow_provider_cancel.hooks.useapi import UseApiHook
        from airflow_provider_cancel.triggers.status import JobStatusTrigger

        for api, conn_id in (("useapi_v2", "bench_useapi"), ("writetext", "bench_writetext")):
            job_id = emu.call("POST", "jobs", {"api": api, "status": "cancelled"})["id"]
            await drive(JobStatusTrigger(conn_id=conn_id, job_ids=[job_id]), events)
        await UseApiHook("bench_useapi").aclose()
    else:
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        job_id = emu.call("POST", "jobs", {"api": "useapi_v2"})["id"]
        await drive(HttpSensorTrigger(f"v2/jobs/?jobid={job_id}", "bench_http", "GET"), events)
    assert events, "warm-up trigger produced no event"


async def run_window(
    make: Callable[[], list[Any]], emu: EmulatorProcess, seconds: float
) -> dict[str, Any]:
    """Start every trigger, let them poll for ``seconds``; CPU and emulator counters."""
    events: list[Any] = []
    before = emu.counters()
    gc.collect()
    rss0, cpu0 = rss_bytes(), cpu_seconds()
    with Clock() as clock:
        tasks = [asyncio.create_task(drive(t, events)) for t in make()]
        await asyncio.sleep(seconds)
    cpu, rss1 = cpu_seconds() - cpu0, rss_bytes()
    after = emu.counters()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    polls = after["status_requests"] - before["status_requests"]
    return {
        "seconds": clock.seconds,
        "polls": polls,
        "polls_per_second": polls / clock.seconds,
        "cpu_seconds": cpu,
        "cpu_ms_per_poll": cpu * 1000 / max(polls, 1),
        "rss_kb_per_trigger": (rss1 - rss0) / 1024 / len(tasks),
        "connections": after["connections"] - before["connections"],
        "token_requests": after["token_requests"] - before["token_requests"],
        "early_events": len(events),
    }


async def traced_memory(make: Callable[[], list[Any]], seconds: float) -> float:
    """Bytes held per running trigger after a few polls (tracemalloc, in its own window)."""
    events: list[Any] = []
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tasks = [asyncio.create_task(drive(t, events)) for t in make()]
    await asyncio.sleep(seconds)
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return (held - base) / len(tasks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=("ours", "http"), required=True)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--memory-seconds", type=float, default=4.0)
    args = parser.parse_args()
    quiet_logging()
    factory = our_triggers if args.side == "ours" else http_triggers
    with EmulatorProcess(latency=0.0, job_duration=3600) as emu:
        emu.use_connections()
        asyncio.run(warm_up(args.side, emu))
        if args.side == "ours":
            from airflow_provider_cancel.hooks.writetext import TOKEN_CACHE

            TOKEN_CACHE.clear()  # the window below must show the one token it needs
        emu.reset()
        make = factory(emu, args.n, args.interval)
        emulator_cpu0 = cpu_seconds(emu.pid)
        window = asyncio.run(run_window(make, emu, args.seconds))
        emulator_cpu = cpu_seconds(emu.pid) - emulator_cpu0
        memory = asyncio.run(traced_memory(make, args.memory_seconds))
    emit(
        {
            "benchmark": "triggerer",
            "side": args.side,
            "n": args.n,
            "interval": args.interval,
            **window,
            "emulator_cpu_share": emulator_cpu / window["seconds"],
            "traced_kb_per_trigger": memory / 1024,
        }
    )


if __name__ == "__main__":
    main()
