"""Import cost: what a DAG file pays to import the operator and the sensor once ``airflow.sdk`` is
already imported, median over fresh interpreters, beside ``HttpOperator`` + ``HttpSensor``.

Run alone: ``python bench/imports.py --runs 15``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from _harness import emit

PROBE = """
import json, sys, time
import airflow.sdk
before = set(sys.modules)
started = time.perf_counter()
{imports}
seconds = time.perf_counter() - started
heavy = ("httpx", "requests", "tenacity", "aiohttp", "airflow_provider_cancel.emulator")
print(json.dumps({{"seconds": seconds,
                   "heavy": sorted(m for m in heavy if m in sys.modules and m not in before)}}))
"""

SIDES = {
    "ours": "from airflow_provider_cancel.operators.cancel import CancelJobOperator\n"
    "from airflow_provider_cancel.sensors.cancelled import JobCancelledSensor",
    "http": "from airflow.providers.http.operators.http import HttpOperator\n"
    "from airflow.providers.http.sensors.http import HttpSensor",
}


def probe(side: str) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=SIDES[side])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    heavy: dict[str, list[str]] = {}
    for _ in range(args.runs):
        for side in SIDES:  # interleaved, so that machine noise hits both alike
            result = probe(side)
            samples[side].append(float(result["seconds"]))  # type: ignore[arg-type]
            heavy[side] = list(result["heavy"])  # type: ignore[call-overload]
    emit(
        {
            "benchmark": "imports",
            "runs": args.runs,
            **{f"{side}_ms": statistics.median(s) * 1000 for side, s in samples.items()},
            **{f"{side}_heavy_modules": heavy[side] for side in SIDES},
        }
    )


if __name__ == "__main__":
    main()
