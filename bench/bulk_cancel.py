"""Bulk cancel: ``CancelJobOperator.execute()`` over N ids against an emulator with a fixed
per-request latency, beside a sequential ``requests`` loop and the limit N x latency / concurrency.

WriteText runs both ways: with ``confirm`` on (the default: its cancel answers 200 without a
body, so each job is read once after it, two round trips per job, the limit doubles) and off.

Run alone: ``python bench/bulk_cancel.py`` (prints a JSON result line for ``bench/run.py``).
"""

from __future__ import annotations

import argparse
from typing import Any
from unittest import mock

import requests
from _harness import USEAPI_TOKEN, WRITETEXT_KEY, Clock, EmulatorProcess, emit, quiet_logging

APIS = {"useapi": ("useapi_v2", "bench_useapi"), "writetext": ("writetext", "bench_writetext")}
FINAL = {"cancelled", "cancelling"}
CONFIRM = {"useapi": (True,), "writetext": (True, False)}
"""useapi's cancel answers with the job's status: there is nothing to confirm."""


def sequential_loop(emu: EmulatorProcess, api: str, job_ids: list[str]) -> float:
    """What people write by hand: one keep-alive session, one call after another."""
    with Clock() as clock, requests.Session() as session:
        if api == "useapi":
            headers = {"Authorization": f"Bearer {USEAPI_TOKEN}"}
            for job_id in job_ids:
                session.get(
                    f"{emu.url}/v2/jobs/cancel/", params={"jobid": job_id}, headers=headers
                ).raise_for_status()
        else:
            answer = session.get(
                f"{emu.url}/web/apitoken/accesstoken", headers={"WriteTextAI-Token": WRITETEXT_KEY}
            ).json()
            headers = {"Authorization": f"Bearer {answer['access_token']}"}
            for job_id in job_ids:
                session.post(
                    f"http://{answer['region']}/text/Generate/Bulk/{job_id}/cancel", headers=headers
                ).raise_for_status()
    return clock.seconds


def operator_run(
    emu: EmulatorProcess,
    api: str,
    job_ids: list[str],
    concurrency: int,
    hook_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One fresh ``CancelJobOperator.execute()`` with a cold token cache; emulator counters."""
    from airflow_provider_cancel.hooks.writetext import TOKEN_CACHE
    from airflow_provider_cancel.operators.cancel import CancelJobOperator

    TOKEN_CACHE.clear()
    operator = CancelJobOperator(
        task_id=f"cancel_{api}",
        conn_id=APIS[api][1],
        job_id=job_ids,
        max_concurrency=concurrency,
        hook_params=hook_params,
    )
    before = emu.counters()
    with Clock() as clock:
        report = operator.execute({"ti": mock.MagicMock()})
    after = emu.counters()
    outcomes: dict[str, int] = {}
    for entry in report.values():
        outcomes[entry["outcome"]] = outcomes.get(entry["outcome"], 0) + 1
    delta = {key: after[key] - before[key] for key in after if key != "by_route"}
    server_side = {job["id"]: job["normalized"] for job in emu.jobs()}
    return {
        "seconds": clock.seconds,
        "requests": delta["requests"],
        "cancel_requests": delta["cancel_requests"],
        "status_requests": delta["status_requests"],
        "token_requests": delta["token_requests"],
        "connections": delta["connections"],
        "faults_served": delta["faults_served"],
        "outcomes": outcomes,
        "all_stopped": all(server_side[j] in FINAL for j in job_ids)
        and all(report[j]["outcome"] in FINAL for j in job_ids),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--sequential-n", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="runs per size; the median counts")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    quiet_logging()
    rows: list[dict[str, Any]] = []
    with EmulatorProcess(latency=args.latency) as emu:
        emu.use_connections()
        for api, (emulator_api, _) in APIS.items():
            emu.reset()
            operator_run(emu, api, emu.create_jobs(emulator_api, 2), 2)  # warm imports
            emu.reset()
            sequential = sequential_loop(emu, api, emu.create_jobs(emulator_api, args.sequential_n))
            per_call = sequential / args.sequential_n
            for n, confirm in [(n, c) for n in sizes for c in CONFIRM[api]]:
                runs = []
                for _ in range(args.repeats):
                    emu.reset()
                    jobs = emu.create_jobs(emulator_api, n)
                    params = {"confirm": confirm}
                    runs.append(operator_run(emu, api, jobs, args.concurrency, params))
                run = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]  # the median run
                round_trips = 2 if api == "writetext" and confirm else 1
                limit = round_trips * n * args.latency / args.concurrency
                rows.append(
                    {
                        "api": api,
                        "n": n,
                        "confirm": confirm,
                        "round_trips": round_trips,
                        **run,
                        "sequential_seconds": per_call * n,
                        "sequential_measured": n == args.sequential_n,
                        "limit_seconds": limit,
                        "repeats": args.repeats,
                        "speedup": per_call * n / run["seconds"],
                        "vs_limit": run["seconds"] / limit,
                    }
                )
            # Rate limits: 10% of every call answered 429 with Retry-After: 1.
            emu.reset()
            job_ids = emu.create_jobs(emulator_api, max(sizes))
            emu.call("POST", "faults", {"kind": "429", "rate": 0.1, "retry_after": 1})
            run = operator_run(emu, api, job_ids, args.concurrency, {"retry_limit": 5})
            rows.append({"api": api, "n": len(job_ids), "rate_limited": True, **run})
    emit(
        {
            "benchmark": "bulk_cancel",
            "latency": args.latency,
            "concurrency": args.concurrency,
            "rows": rows,
        }
    )


if __name__ == "__main__":
    main()
