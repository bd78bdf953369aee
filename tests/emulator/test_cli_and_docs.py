"""``python -m airflow_provider_cancel.emulator --help`` explains every option with its default,
and docs/emulator.md lists every option and shows requests that really work (replayed here with
the same paths, headers and bodies, reading the id fields the doc names)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from airflow_provider_cancel.emulator import Emulator
from airflow_provider_cancel.emulator.__main__ import build_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "emulator.md"


def test_help_gives_every_option_a_meaning_and_a_default() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cancel.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    blocks: dict[str, str] = {}  # option -> its whole entry in the help text
    current = ""
    for line in done.stdout.split("options:")[1].split("\n\n")[0].splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            blocks[current] = line
        elif current:
            blocks[current] += " " + line.strip()
    options = [a for a in build_parser()._actions if a.option_strings != ["-h", "--help"]]
    assert len(options) == 16
    for action in options:
        entry = blocks[action.option_strings[0]]
        assert "(default: " in entry, entry
        words = entry.split("(default: ")[0].split()
        assert len(words) >= 4, entry  # the option, its metavar and a real explanation
    assert "Fault kinds: 429" in done.stdout


def test_the_doc_lists_every_option_and_control_endpoint() -> None:
    text = DOC.read_text()
    for action in build_parser()._actions:
        if action.option_strings != ["-h", "--help"]:
            assert f"`{action.option_strings[0]}" in text, action.option_strings
    for endpoint in ("health", "jobs", "faults", "counters", "requests", "config", "reset"):
        assert f"/_emulator/{endpoint}" in text, endpoint


def call(method: str, url: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        raw = answer.read()
        return answer.status, json.loads(raw) if raw else None


def test_the_documented_requests_work() -> None:
    text = DOC.read_text()
    bearer = {"Authorization": "Bearer emulator-useapi-token"}
    with Emulator(cancel_delay=0.2) as emu:
        e = emu.url
        assert 'POST "$E/v2/jobs/imagine"' in text
        _, created = call("POST", f"{e}/v2/jobs/imagine", {"prompt": "a lighthouse"}, **bearer)
        job = created["jobid"]
        assert call("GET", f"{e}/v2/jobs/?jobid={job}", **bearer)[1]["jobid"] == job
        assert '"$E/v2/jobs/cancel/?jobid=$J"' in text
        assert call("GET", f"{e}/v2/jobs/cancel/?jobid={job}", **bearer)[1]["status"] == "cancelled"

        assert 'POST "$E/v3/midjourney/jobs/imagine"' in text
        _, created = call("POST", f"{e}/v3/midjourney/jobs/imagine", {"prompt": "x"}, **bearer)
        v3 = created["jobid"]
        assert call("DELETE", f"{e}/v3/midjourney/jobs/{v3}", **bearer)[0] == 204
        assert call("GET", f"{e}/v3/midjourney/jobs/{v3}", **bearer)[1]["error"] == (
            "Job cancelled by user"
        )

        assert "WriteTextAI-Token: emulator-writetext-key" in text
        _, token = call(
            "GET",
            f"{e}/web/apitoken/accesstoken",
            **{"WriteTextAI-Token": "emulator-writetext-key"},
        )
        region, auth = token["region"], {"Authorization": f"Bearer {token['access_token']}"}
        assert re.search(r'POST "http://\$R/text/Generate" ', text)
        _, submitted = call("POST", f"http://{region}/text/Generate", {"name": "x"}, **auth)
        request_id = submitted["requestId"]
        assert (
            call("POST", f"http://{region}/text/Generate/Bulk/{request_id}/cancel", **auth)[0]
            == 200
        )
        status = call("GET", f"http://{region}/text/Generate/Bulk/{request_id}", **auth)[1]
        assert status["status"] == "Cancelling"

        pinned = call("POST", f"{e}/_emulator/jobs/{request_id}/status", {"status": "Cancelled"})
        assert pinned[1]["normalized"] == "cancelled"
        assert call("POST", f"{e}/_emulator/faults", {"kind": "429", "rate": 0.5})[1] == {
            "ok": True
        }
        assert call("GET", f"{e}/_emulator/counters")[1]["cancel_requests"] == 3
        assert call("POST", f"{e}/_emulator/reset")[1] == {"ok": True}


def test_the_documented_service_requests_work() -> None:
    text = DOC.read_text()
    bearer = {"Authorization": "Bearer emulator-useapi-token"}
    with Emulator() as emu:
        e = emu.url
        assert """-X POST "$E/_emulator/jobs" -d '{"api": "flowmusic"}'""" in text
        flowmusic = call("POST", f"{e}/_emulator/jobs", {"api": "flowmusic"})[1]["id"]
        assert "@example.com" in flowmusic
        path = f"{e}/v1/flowmusic/jobs/{urllib.parse.quote(flowmusic, safe='')}"
        assert '-X DELETE "$E/v1/flowmusic/jobs/$FE"' in text
        assert call("DELETE", path, **bearer)[0] == 204
        read = call("GET", path, **bearer)[1]
        assert (read["status"], read["error"]["code"]) == ("failed", "user_cancelled")

        assert '-X DELETE "$E/v1/kling/scheduler/$K"' in text
        kling = call("POST", f"{e}/_emulator/jobs", {"api": "kling"})[1]["id"]
        assert kling.isdigit()
        assert call("DELETE", f"{e}/v1/kling/scheduler/{kling}", **bearer)[0] == 204
        seen = call("GET", f"{e}/_emulator/jobs/{kling}")[1]
        assert seen["tracked"] is False
        assert seen["normalized"] in ("queued", "running")  # it goes on
