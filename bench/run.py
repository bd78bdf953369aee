"""``make bench``: run every benchmark in its own process and print one table with PASS/FAIL per bar.

Each benchmark script starts its own emulator process (two cores: one for the code under
measurement, one for the emulator) and prints one ``BENCH-RESULT {json}`` line; logs go to a file
whose path is printed at the end. Exit status 1 if any bar fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str, log: Any) -> dict[str, Any]:
    started = time.perf_counter()
    print(f"  running {script} {' '.join(args)} ...", file=sys.stderr, flush=True)
    process = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=HERE,
    )
    log.flush()
    for line in process.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH-RESULT "))
            print(f"    done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            return result
    raise SystemExit(f"{script} {' '.join(args)} printed no result (exit {process.returncode})")


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.failed = 0

    def row(self, what: str, ours: str, other: str, bar: str, ok: bool | None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        self.failed += ok is False
        self.rows.append((what, ours, other, bar, verdict))

    def print(self) -> None:
        header = ("Benchmark", "Ours", "Comparison", "Bar", "Result")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(5)]
        line = "+".join("-" * (w + 2) for w in widths)
        print(f"+{line}+")
        print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
        print(f"+{line}+")
        for r in self.rows:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        print(f"+{line}+")


def bulk_rows(table: Table, result: dict[str, Any]) -> None:
    conc, latency = result["concurrency"], result["latency"]
    names = {"useapi": "useapi v2", "writetext": "WriteText"}
    for r in result["rows"]:
        api = names[r["api"]]
        tokens_ok = r["token_requests"] == (1 if r["api"] == "writetext" else 0)
        pool_ok = r["connections"] <= conc + (1 if r["api"] == "writetext" else 0)
        counters = (
            f"{r['requests']} req ({r['cancel_requests']} cancel, {r['status_requests']} read, "
            f"{r['token_requests']} token), {r['connections']} conn"
        )
        if r.get("rate_limited"):
            done = r["outcomes"].get("cancelled", 0) + r["outcomes"].get("cancelling", 0)
            table.row(
                f"Bulk {api} N={r['n']}, 10% 429 (Retry-After 1 s)",
                f"{done}/{r['n']} stopped in {r['seconds']:.2f} s; {counters}",
                f"{r['faults_served']} x 429 answered and retried (retry_limit 5)",
                "every job cancelled",
                r["all_stopped"] and done == r["n"] and tokens_ok,
            )
            continue
        sequential = f"sequential {r['sequential_seconds']:.2f} s" + (
            "" if r["sequential_measured"] else " (extrapolated from N=100)"
        )
        speed = f"{r['speedup']:.1f}x faster"
        limit = f"limit {r['limit_seconds']:.2f} s -> {r['vs_limit']:.2f}x"
        confirmed = r["api"] == "writetext" and r["confirm"]
        mode = ", confirm on" if confirmed else (", confirm off" if r["api"] == "writetext" else "")
        what = f"Bulk {api} N={r['n']}{mode} (median of {r['repeats']})"
        ours = f"{r['seconds']:.3f} s; {counters}"
        healthy = tokens_ok and pool_ok and r["all_stopped"]
        if r["n"] == 100:
            # With confirm on, every job costs two round trips (cancel, then one read).
            need = 15 if confirmed else 25
            other, bar = f"{sequential}: {speed}; {limit}", f">= {need}x sequential"
            ok = r["speedup"] >= need and healthy
        else:
            other, bar = f"{limit}; {sequential}: {speed}", "<= 1.3x limit"
            ok = r["vs_limit"] <= 1.3 and healthy
        table.row(what, ours, other, bar, ok)
    table.row(
        "  (bulk settings)",
        f"max_concurrency={conc}, latency {latency * 1000:.0f} ms/request",
        "limit = N x round trips x latency / max_concurrency",
        "token requests: WriteText 1",
        None,
    )


def trigger_rows(table: Table, ours: dict[str, Any], http: dict[str, Any]) -> None:
    n = ours["n"]
    table.row(
        f"Triggerer CPU per poll ({n} triggers, {ours['seconds']:.0f} s)",
        f"{ours['cpu_ms_per_poll']:.2f} ms ({ours['polls']} polls, {ours['polls_per_second']:.0f}/s)",
        f"HttpSensorTrigger {http['cpu_ms_per_poll']:.2f} ms ({http['polls']} polls, "
        f"{http['polls_per_second']:.0f}/s)",
        "<= 1 ms and < http",
        ours["cpu_ms_per_poll"] <= 1.0 and ours["cpu_ms_per_poll"] < http["cpu_ms_per_poll"],
    )
    table.row(
        "Triggerer memory per trigger (tracemalloc)",
        f"{ours['traced_kb_per_trigger']:.1f} KB (RSS delta {ours['rss_kb_per_trigger']:.1f} KB)",
        f"HttpSensorTrigger {http['traced_kb_per_trigger']:.1f} KB "
        f"(RSS delta {http['rss_kb_per_trigger']:.1f} KB)",
        "<= 50 KB and < http",
        ours["traced_kb_per_trigger"] <= 50
        and ours["traced_kb_per_trigger"] < http["traced_kb_per_trigger"],
    )
    table.row(
        "Triggerer sharing (emulator counters)",
        f"{ours['connections']} connections, {ours['token_requests']} token request",
        f"HttpSensorTrigger {http['connections']} connections (one per poll)",
        "pooled client, 1 token",
        ours["token_requests"] == 1 and ours["connections"] <= 64,
    )
    table.row(
        "  (emulator load, separate process)",
        f"{ours['emulator_cpu_share'] * 100:.0f}% of a core",
        f"{http['emulator_cpu_share'] * 100:.0f}% of a core",
        "emulator keeps up",
        ours["emulator_cpu_share"] < 0.8 and http["emulator_cpu_share"] < 0.8,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter windows, fewer samples")
    args = parser.parse_args()
    seconds, runs, samples = ("10", "5", "3") if args.quick else ("30", "15", "7")
    table = Table()
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", prefix="bench-", suffix=".log", delete=False) as log:
        print(f"airflow-provider-cancel benchmarks (logs: {log.name})", file=sys.stderr)
        load_before = os.getloadavg()[0]
        bulk = run("bulk_cancel.py", log=log)
        ours = run("triggerer.py", "--side", "ours", "--seconds", seconds, log=log)
        http = run("triggerer.py", "--side", "http", "--seconds", seconds, log=log)
        imports = run("imports.py", "--runs", runs, log=log)
        latency = run("sensor_latency.py", "--samples", samples, log=log)
    bulk_rows(table, bulk)
    trigger_rows(table, ours, http)
    heavy = ", ".join(imports["ours_heavy_modules"]) or "none"
    table.row(
        f"Import operator + sensor after airflow.sdk (median of {imports['runs']})",
        f"{imports['ours_ms']:.1f} ms (heavy modules loaded: {heavy})",
        f"HttpOperator + HttpSensor {imports['http_ms']:.1f} ms",
        "<= 20 ms",
        imports["ours_ms"] <= 20 and not imports["ours_heavy_modules"],
    )
    for api, name in (("useapi", "useapi v2"), ("writetext", "WriteText")):
        table.row(
            f"Sensor latency {name}, poke_interval=1 (median of {latency['samples']})",
            f"{latency[f'{api}_median_s']:.2f} s (max {latency[f'{api}_max_s']:.2f} s)",
            "flip -> trigger event -> execute_complete",
            "<= 1.5 s median",
            latency[f"{api}_median_s"] <= 1.5,
        )
    table.print()
    print(
        f"{len([r for r in table.rows if r[4]])} bars, {table.failed} failed; "
        f"took {time.perf_counter() - started:.0f} s on {os.cpu_count()} cores "
        f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after: other work on "
        "the machine skews wall times)"
    )
    sys.exit(1 if table.failed else 0)


if __name__ == "__main__":
    main()
