"""Sensor latency: from the emulator flipping a job to ``cancelled`` to the deferred sensor's task
finishing, with ``poke_interval=1``.

The real deferral path: ``JobCancelledSensor.execute()`` checks once and raises ``TaskDeferred``;
its trigger runs in an event loop until its event; ``execute_complete()`` finishes the task. The
flip happens at a random phase of the poll cycle (as in real life), after deferral.

Run alone: ``python bench/sensor_latency.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import threading
import time
from typing import Any
from unittest import mock

from _harness import EmulatorProcess, emit, quiet_logging

APIS = {"useapi": ("useapi_v2", "bench_useapi"), "writetext": ("writetext", "bench_writetext")}


def one_sample(emu: EmulatorProcess, api: str, rng: random.Random) -> float:
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor

    emulator_api, conn_id = APIS[api]
    job_id = emu.create_jobs(emulator_api, 1)[0]
    sensor = JobCancelledSensor(
        task_id="wait_cancelled",
        conn_id=conn_id,
        job_id=job_id,
        poke_interval=1,
        timeout=60,
        deferrable=True,
    )
    context: Any = {"ti": mock.MagicMock()}
    try:
        sensor.execute(context)
    except TaskDeferred as deferred:
        trigger = deferred.trigger
    else:
        raise AssertionError("the sensor did not defer")
    flipped: list[float] = []

    def flip() -> None:
        emu.set_status(job_id, "cancelled")
        flipped.append(time.perf_counter())

    async def run() -> dict[str, Any]:
        timer = threading.Timer(rng.uniform(0.3, 1.3), flip)
        timer.start()
        async for event in trigger.run():
            timer.join()
            return dict(event.payload)
        raise AssertionError("no event")

    event = asyncio.run(run())
    sensor.execute_complete(context, event)
    return time.perf_counter() - flipped[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=7)
    args = parser.parse_args()
    quiet_logging()
    rng = random.Random(7)
    results: dict[str, Any] = {"benchmark": "sensor_latency", "samples": args.samples}
    with EmulatorProcess(latency=0.0) as emu:
        emu.use_connections()
        for api in APIS:
            one_sample(emu, api, rng)  # warm imports
            samples = [one_sample(emu, api, rng) for _ in range(args.samples)]
            results[f"{api}_median_s"] = statistics.median(samples)
            results[f"{api}_max_s"] = max(samples)
    emit(results)


if __name__ == "__main__":
    main()
