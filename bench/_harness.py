"""What every benchmark shares: an emulator in its own process, connections, CPU clocks.

The emulator runs out of process (``python -m airflow_provider_cancel.emulator``) so that its
threads never compete for the GIL with the code under measurement; with two cores, each side gets
one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

USEAPI_TOKEN = "emulator-useapi-token"
WRITETEXT_KEY = "emulator-writetext-key"
LISTENING = re.compile(r"emulator listening on (http://\S+) \(region (\S+)\)")


@dataclass
class EmulatorProcess:
    """``python -m airflow_provider_cancel.emulator`` in a child process, driven over HTTP."""

    latency: float = 0.0
    job_duration: float = 3600.0
    extra_args: tuple[str, ...] = ()

    def __enter__(self) -> EmulatorProcess:
        command = [
            sys.executable,
            "-m",
            "airflow_provider_cancel.emulator",
            "--port",
            "0",
            "--latency",
            str(self.latency),
            "--job-duration",
            str(self.job_duration),
            "--start-delay",
            "0",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = LISTENING.search(line)
        if match is None:
            self.process.kill()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.url, self.region = match.group(1), match.group(2)
        self.control = requests.Session()
        return self

    def __exit__(self, *exc: object) -> None:
        self.control.close()
        self.process.terminate()
        self.process.wait(timeout=10)

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = self.control.request(method, f"{self.url}/_emulator/{path}", json=payload)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.call("POST", "reset")

    def configure(self, **settings: Any) -> None:
        self.call("POST", "config", settings)

    def counters(self) -> dict[str, Any]:
        return dict(self.call("GET", "counters"))

    def create_jobs(self, api: str, count: int) -> list[str]:
        return [self.call("POST", "jobs", {"api": api})["id"] for _ in range(count)]

    def set_status(self, job_id: str, status: str) -> None:
        self.call("POST", f"jobs/{quote(job_id, safe='')}/status", {"status": status})

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "jobs"))

    def use_connections(self) -> None:
        """Point the ``bench_*`` connections at this emulator (AIRFLOW_CONN_* in JSON form)."""
        connections = {
            "bench_useapi": {"conn_type": "useapi", "host": self.url, "password": USEAPI_TOKEN},
            "bench_writetext": {
                "conn_type": "writetext",
                "host": self.url,
                "password": WRITETEXT_KEY,
            },
            # What an HttpOperator/HttpSensor user sets up by hand for the same API.
            "bench_http": {
                "conn_type": "http",
                "host": self.url,
                "extra": json.dumps({"Authorization": f"Bearer {USEAPI_TOKEN}"}),
            },
        }
        for conn_id, fields in connections.items():
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (all its threads); this process by default."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def quiet_logging() -> None:
    """Log as a task does (JSON lines, INFO: the per-job lines are part of the cost), to nowhere."""
    from airflow.sdk.log import configure_logging

    configure_logging(json_output=True, output=open(os.devnull, "wb"))  # noqa: SIM115


class Clock:
    """``with Clock() as c: ...`` then ``c.seconds``."""

    def __enter__(self) -> Clock:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def emit(result: dict[str, Any]) -> None:
    """The one JSON line ``bench/run.py`` reads from a benchmark's stdout."""
    print("BENCH-RESULT " + json.dumps(result), flush=True)
