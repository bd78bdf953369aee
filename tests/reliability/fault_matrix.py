"""The fault matrix: every fault x every call x both APIs x the sync and the async path.

useapi.net is there as Midjourney v2 and v3 and one service of each family beside them:
InsightFaceSwap (``faceswap``, discord), FlowMusic (jobs) and Kling (scheduler: no read, so no
status column; a cancel only stops the tracking, outcome ``untracked``).

Each cell injects one fault into the bundled emulator (or points the connection at a broken
address for faults the emulator cannot serve), runs one hook call with small settings
(``retry_limit=2``, ``retry_delay=0.01``, ``timeout=0.5``) and checks that it ends in the
expected way: a success after retries, or the right typed error from
:mod:`airflow_provider_cancel.exceptions` with a clear message, within a time bound; never a
hang, never a success for a job that was not stopped.

Run ``python -m tests.reliability.fault_matrix`` (``make faults``) to print the matrix;
``tests/reliability/test_fault_matrix.py`` walks the same cells under pytest (``make test``).

Faults the emulator cannot serve, and how they are made here (loopback only):

* connection refused: a port that was bound and closed again, nothing listens there;
* connect timeout: a listening socket with ``backlog=0`` whose accept queue is filled by other
  connections and never drained, so the kernel drops further SYNs;
* DNS failure: host ``nonexistent.invalid`` (the ``.invalid`` TLD never resolves; fails
  locally in ~1 ms).

For WriteText the broken address is the token host (call ``token``) or the ``region`` extra
(calls ``cancel`` and ``status``), so each call is hit on its own.

Faults no emulator makes (rows marked *hostile*) come from :mod:`tests.hostile_server`: a
byte-level server in front of the emulator that answers the faulted call itself (a head
trickled a byte at a time, a body without end, redirects, a bad status line, JSON nested past
the parser, the credentials echoed back in each encoding) and passes every other request
through, so the emulator still tells what happened to the job.

Cells get their connection as an object handed to the hook (``use_connection``), never through
``os.environ``: worker threads changing the environment race with every library that reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cancel.exceptions import (
    AuthenticationError,
    CancelApiError,
    InvalidResponseError,
    JobNotFoundError,
    ModerationPendingError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from tests import hostile_server
from tests.hostile_server import HostileServer, secret_forms

# With "/", "+", "=" and ":" so that every encoding of them differs from the raw form.
USEAPI_TOKEN = "user:1308-rel/useapi+tok=5f1c"
WRITETEXT_KEY = "rel/writetext+key=9b2e"

RETRY_LIMIT = 2
RETRY_DELAY = 0.01
TIMEOUT = 1.0
"""The timeout of cells whose fault is about time (a hang, a full backlog, a trickle)."""
RELAXED_TIMEOUT = 5.0
"""Every other cell's: a loaded machine may answer slowly, and no such cell is about time."""
HOOK_PARAMS: dict[str, Any] = {
    "retry_limit": RETRY_LIMIT,
    "retry_delay": RETRY_DELAY,
    "max_retry_wait": 1.0,
}
ATTEMPTS = RETRY_LIMIT + 1
TIME_BOUND = ATTEMPTS * TIMEOUT + 2.0
"""No timing cell may take longer: every attempt at its timeout, plus backoff and slack."""
WHOLE_ANSWER_BOUND = ATTEMPTS * (TIMEOUT + TIMEOUT) + 2.0
"""An answer that trickles in is cut at connect_timeout + timeout (here both 1 s)."""
RELAXED_BOUND = 15.0
"""Other cells end far sooner; this only catches a hang."""

APIS = ("useapi_v2", "useapi_v3", "faceswap", "flowmusic", "kling", "writetext")
"""Emulator job keys; the useapi services are chosen with the connection's ``service`` extra."""
SERVICES = {"faceswap", "flowmusic", "kling"}
NO_READ = {"kling"}
"""useapi services without a per-job read: no status cells."""
CALLS = ("token", "cancel", "status")
MODES = ("sync", "async")
RUNNING_RAW = {
    "useapi_v2": "started",
    "useapi_v3": "started",
    "faceswap": "started",
    "flowmusic": "pending",
    "kling": "processing",
    "writetext": "Running",
}
CANCEL_SUCCESS = {
    "useapi_v2": "cancelled",
    "useapi_v3": "cancelled",
    "faceswap": "cancelled",
    "flowmusic": "cancelled",
    "kling": "untracked",
    "writetext": "cancelling",
}
ALSO_RIGHT = {"cancelling": ("cancelled",)}
"""A WriteText cancel is confirmed by a read; a slow machine may read it already cancelled."""
ERROR_NAMES = {
    429: RateLimitedError,
    500: ServerError,
    502: ServerError,
    503: ServerError,
    504: ServerError,
}


# ---------------------------------------------------------------------- faults and expectations


@dataclass(frozen=True)
class Fault:
    """One row of the matrix."""

    name: str
    kind: str | None = None
    """Emulator fault kind, or None for faults made outside the emulator."""
    count: int = 1
    retry_after: float | None = None
    retry_after_json: float | None = None
    """``retryAfter`` in a 429's JSON body (useapi.net's services)."""
    network: str | None = None
    """``refused``, ``blackhole`` (connect timeout) or ``dns``."""
    real_expiry: bool = False
    """Expire the cached WriteText token in the emulator (a genuine 401) before the call."""
    hostile: str | None = None
    """A fault of :mod:`tests.hostile_server` (see :func:`hostile_answer`)."""
    meaning: str = ""

    @property
    def persistent(self) -> bool:
        return self.count >= ATTEMPTS

    @property
    def about_time(self) -> bool:
        return self.kind == "hang" or self.network == "blackhole" or self.hostile == "trickle"

    @property
    def timeout(self) -> float:
        return TIMEOUT if self.about_time else RELAXED_TIMEOUT


RETRYABLE = ("429", "500", "502", "503", "504", "html", "drop", "hang")

FAULTS: tuple[Fault, ...] = (
    Fault("429 once", "429", meaning="rate limited once, no Retry-After"),
    Fault("429 once, Retry-After 0", "429", retry_after=0, meaning="rate limited, retry now"),
    Fault("429 once, Retry-After 0.3", "429", retry_after=0.3, meaning="wait is honoured"),
    Fault(
        "429 once, retryAfter 0.3 in body",
        "429",
        retry_after_json=0.3,
        meaning="useapi: the JSON body says when",
    ),
    Fault("500 once", "500"),
    Fault("502 once", "502"),
    Fault("503 once", "503"),
    Fault("504 once", "504"),
    Fault("HTML 502 once", "html", meaning="Cloudflare error page"),
    Fault("reset once", "drop", meaning="connection closed without an answer"),
    Fault("hang once", "hang", meaning="server accepts, never answers (read timeout)"),
    Fault("429 always", "429", count=9),
    Fault("429 always, Retry-After 0", "429", count=9, retry_after=0),
    Fault("500 always", "500", count=9),
    Fault("502 always", "502", count=9),
    Fault("503 always", "503", count=9),
    Fault("504 always", "504", count=9),
    Fault("HTML 502 always", "html", count=9),
    Fault("reset always", "drop", count=9),
    Fault("hang always", "hang", count=9),
    Fault("refused", network="refused", meaning="nothing listens on the port"),
    Fault("connect timeout", network="blackhole", meaning="SYN never answered (full backlog)"),
    Fault("DNS failure", network="dns", meaning="host nonexistent.invalid"),
    Fault("596", "596", meaning="useapi pending moderation"),
    Fault("403", "403", meaning="useapi: another account's job"),
    Fault("410", "410", meaning="useapi: the job expired"),
    Fault("HTML 200", "html200", meaning="HTML page with status 200"),
    Fault("truncated JSON", "malformed", meaning='200 with body {"jobid": "abc'),
    Fault("empty body", "empty", meaning="200 with an empty body"),
    Fault("401 token once", "expired_token", meaning="WriteText access token refused once"),
    Fault("401 token twice", "expired_token", count=2, meaning="refused again after refresh"),
    Fault("token expired", real_expiry=True, meaning="emulator forgets issued tokens"),
    Fault("301 + Location", hostile="301 /stolen", meaning="hostile: never followed"),
    Fault("302, no Location", hostile="302"),
    Fault("303 + Location", hostile="303 /stolen"),
    Fault("307, no Location", hostile="307"),
    Fault("308 + Location", hostile="308 /stolen"),
    Fault("trickled head", hostile="trickle", meaning="hostile: 1 byte / 50 ms"),
    Fault("endless body", hostile="endless", meaning="hostile: cut at max_response_size"),
    Fault("bad status line", hostile="bad status", meaning="hostile"),
    Fault("deep JSON", hostile="deep json", meaning="hostile: 100,000 nested lists"),
    *(
        Fault(f"secret echoed, {form}", hostile=f"echo {form}", meaning="hostile: 400")
        for form in hostile_server.ECHO_FORMS
    ),
    # Hostile text and numbers (issue 18): cleaned in linear time, bounded, clamped.
    Fault(
        "backslash-run error body",
        hostile="backslashes",
        meaning="hostile: 400, 450,000 backslashes in the error",
    ),
    Fault(
        "forging raw status",
        hostile="forged status",
        meaning="hostile: 200, status and error with a log line, ANSI, 400 KB",
    ),
    Fault(
        "429, retryAfter of 310 digits",
        hostile="retry body",
        meaning="hostile: always; the wait is capped at max_retry_wait",
    ),
    Fault(
        "429, retryAt of 400 digits",
        hostile="retry at",
        meaning="hostile: always; the wait is capped at max_retry_wait",
    ),
)
HUGE_RETRY_BODIES = {
    "body": '{"error": "slow down", "retryAfter": ' + "9" * 310 + "}",
    "at": '{"error": "slow down", "retryAt": ' + "9" * 400 + "}",
}
REPORT_BOUND = 2000
"""No error message or report of any cell is longer (a 400 KB status or error is cut)."""


def hostile_answer(name: str) -> hostile_server.Answer:
    """The byte-level answer a hostile row serves for the faulted call."""
    kind, _, arg = name.partition(" ")
    if kind.isdigit():
        return hostile_server.redirect(int(kind), arg or None)
    if kind == "echo":
        return hostile_server.echo_secret(arg)
    return {
        "trickle": hostile_server.trickled_head(),
        "endless": hostile_server.endless_body(),
        "bad": hostile_server.bad_status_line(),
        "deep": hostile_server.deep_json(),
        "backslashes": hostile_server.backslash_error(),
        "forged": hostile_server.forged_status(),
        "retry": hostile_server.rate_limited(body=HUGE_RETRY_BODIES.get(arg, "")),
    }[kind]


@dataclass(frozen=True)
class Expect:
    """What one cell must end in."""

    label: str
    result: str | None = None
    """On success: the cancel outcome (cancel/token cells) or the job's normalised status."""
    error: type[CancelApiError] | None = None
    says: tuple[str, ...] = ()
    attempts: int | None = None
    """Requests the emulator saw for the faulted call (retries included)."""
    token_requests: int | None = None
    status_requests: int | None = None
    """For cancel cells: reads of the job the cancel flow made after an unclear answer."""
    min_seconds: float = 0.0
    job_after: tuple[str, ...] | None = None
    """The job's normalised status in the emulator afterwards (catches wrong successes)."""
    bound: float = RELAXED_BOUND


def operation(call: str) -> str:
    """The hook method a cell calls: a token is fetched on the way to a cancel."""
    return "get_job" if call == "status" else "cancel_job"


def expect(fault: Fault, api: str, call: str) -> Expect | None:
    """The expected end of one cell; None when the cell does not exist."""
    expected = _expect(fault, api, call)
    if expected is not None and fault.about_time and expected.bound == RELAXED_BOUND:
        expected = dataclasses.replace(expected, bound=TIME_BOUND)
    return expected


def _expect(fault: Fault, api: str, call: str) -> Expect | None:
    writetext = api == "writetext"
    if call == "token" and not writetext:
        return None  # useapi has no token call
    if call == "status" and api in NO_READ:
        return None
    if fault.kind in ("403", "410") and writetext:
        return None  # useapi.net's codes
    if (fault.kind == "expired_token" or fault.real_expiry) and (not writetext or call == "token"):
        return None  # only WriteText's job calls check access tokens
    op = operation(call)
    after_running = ("running",)
    ok_result = CANCEL_SUCCESS[api] if op == "cancel_job" else "running"
    ok_after = ("cancelled", "cancelling") if op == "cancel_job" else after_running
    if api in NO_READ:
        ok_after = after_running  # only the tracking stopped: the job goes on
    counted = "token_requests" if call == "token" else "attempts"

    def ok(label: str, tries: int, **more: Any) -> Expect:
        counts: dict[str, Any] = {counted: tries}
        return Expect(label, result=ok_result, job_after=ok_after, **counts, **more)

    def fails(label: str, error: type[CancelApiError], tries: int | None, *says: str) -> Expect:
        extra: dict[str, Any] = {} if tries is None else {counted: tries}
        return Expect(label, error=error, says=says, job_after=after_running, **extra)

    if fault.hostile is not None:
        return expect_hostile(fault, api, call)
    if fault.network is not None:
        says = {
            "refused": f"got no answer after {ATTEMPTS} attempts",
            "blackhole": "no answer within the timeout",
            "dns": f"got no answer after {ATTEMPTS} attempts",
        }[fault.network]
        token = 1 if writetext and call != "token" else None
        return Expect(
            "TransportError",
            error=TransportError,
            says=(says,),
            token_requests=token,
            job_after=after_running,
        )
    if fault.kind in RETRYABLE and not fault.persistent:
        wait = fault.retry_after or fault.retry_after_json or 0.0
        return ok(f"{ok_result} after retry", 2, min_seconds=wait)
    if fault.kind in RETRYABLE:
        if fault.kind in ("drop", "hang"):
            why = "no answer within the timeout" if fault.kind == "hang" else "got no answer"
            return fails("TransportError", TransportError, ATTEMPTS, why)
        code = 502 if fault.kind == "html" else int(fault.kind or 0)
        said = [f"HTTP {code}", f"after {RETRY_LIMIT} retries"]
        if fault.kind == "html":
            said.append("non-JSON body (text/html")
        error = ERROR_NAMES[code]
        return fails(error.__name__, error, ATTEMPTS, *said)
    if fault.kind == "596":
        return fails("ModerationPendingError, no retry", ModerationPendingError, 1, "HTTP 596")
    if fault.kind == "403":
        return fails("AuthenticationError, no retry", AuthenticationError, 1, "another account")
    if fault.kind == "410":
        return fails("JobNotFoundError, no retry", JobNotFoundError, 1, "expired")
    if fault.kind in ("html200", "malformed", "empty"):
        if call in ("status", "token"):
            return fails("InvalidResponseError", InvalidResponseError, 1)
        # A 2xx cancel whose body says nothing is confirmed by reading the job once. The
        # emulator did not apply the cancel (it served the fault instead), so the job still
        # reads running: after an empty 2xx (an API's yes) that is "cancelling"; after an
        # HTML page or a cut body (not the API's yes) the job was not stopped: "error". A
        # service without a read cannot look: an empty 2xx is its yes ("untracked").
        said_yes = fault.kind == "empty"
        if api in NO_READ:
            label, reads = ("untracked" if said_yes else "error: not the API's answer"), 0
        else:
            label = "cancelling, job read" if said_yes else "error: still running, job read"
            reads = 1
        return Expect(
            label,
            result=label.split(",")[0].split(":")[0],
            attempts=1,
            status_requests=reads,
            job_after=after_running,
        )
    if fault.kind == "expired_token" and fault.count == 1:
        return ok("refresh token once, then ok", 2, token_requests=2)
    if fault.kind == "expired_token":
        return fails("AuthenticationError after 1 refresh", AuthenticationError, 2, "HTTP 401")
    if fault.real_expiry:
        return ok("refresh token once, then ok", 2, token_requests=1)
    raise AssertionError(f"no expectation for {fault}")


def expect_hostile(fault: Fault, api: str, call: str) -> Expect:
    """Hostile rows: the faulted call never reaches the emulator; ``attempts`` counts what the
    hostile server saw."""
    kind = (fault.hostile or "").split(" ")[0]
    running = ("running",)
    if kind.isdigit():
        return Expect(
            "InvalidResponseError, not followed",
            error=InvalidResponseError,
            says=(f"HTTP {kind}", "redirect"),
            attempts=1,
            job_after=running,
        )
    if kind in ("trickle", "bad"):
        why = "no answer within the timeout" if kind == "trickle" else "got no answer"
        return Expect(
            "TransportError",
            error=TransportError,
            says=(why,),
            attempts=ATTEMPTS,
            job_after=running,
            bound=WHOLE_ANSWER_BOUND,
        )
    if kind == "endless":
        return Expect(
            "InvalidResponseError, 1 MiB read",
            error=InvalidResponseError,
            says=("larger than 1048576 bytes",),
            attempts=1,
            job_after=running,
        )
    if kind == "retry":  # every wait capped at max_retry_wait (1 s), then the typed error
        return Expect(
            "RateLimitedError, waits capped",
            error=RateLimitedError,
            says=("HTTP 429", f"after {RETRY_LIMIT} retries"),
            attempts=ATTEMPTS,
            job_after=running,
        )
    if kind == "forged" and call == "token":
        return Expect("InvalidResponseError", error=InvalidResponseError, attempts=1)
    if kind == "forged" and call == "status":  # "Running\n[...]" is no status: unknown
        return Expect("unknown, cleaned", result="unknown", attempts=1, job_after=running)
    if kind == "forged":  # a 2xx without a known status: confirmed by a read (still running)
        untracked = api in NO_READ
        return Expect(
            "untracked" if untracked else "cancelling, job read",
            result="untracked" if untracked else "cancelling",
            attempts=1,
            status_requests=0 if untracked else 1,
            job_after=running,
        )
    # deep JSON (200), echoed secrets and a backslash run (400): a status or token call fails;
    # a cancel reads the job (a 200 that is not JSON is no yes; a 400 may mean "already ended")
    # and finds it still running: not stopped. A service without a read cannot look: a 200 that is not the
    # API's answer is an error outcome, a 400 an error.
    if call == "cancel" and api in NO_READ and kind == "deep":
        return Expect(
            "error: not the API's answer",
            result="error",
            attempts=1,
            status_requests=0,
            job_after=running,
        )
    if call == "cancel" and api not in NO_READ:
        return Expect(
            "error: still running, job read",
            result="error",
            attempts=1,
            status_requests=1,
            job_after=running,
        )
    error = InvalidResponseError if kind == "deep" else CancelApiError
    return Expect(error.__name__, error=error, attempts=1, job_after=running)


@dataclass(frozen=True)
class Cell:
    fault: Fault
    api: str
    call: str
    mode: str
    expected: Expect

    @property
    def id(self) -> str:
        return f"{self.fault.name}|{self.api}|{self.call}|{self.mode}"


def cells() -> list[Cell]:
    found = []
    for fault in FAULTS:
        for api in APIS:
            for call in CALLS:
                expected = expect(fault, api, call)
                if expected is None:
                    continue
                for mode in MODES:
                    found.append(Cell(fault, api, call, mode, expected))
    return found


# ---------------------------------------------------------------------- environment


@dataclass
class Outcome:
    cell: Cell
    passed: bool
    got: str
    seconds: float
    problems: list[str] = field(default_factory=list)


class Blackhole:
    """A loopback port whose accept queue is full: connecting to it times out."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(0)
        self.port = self.server.getsockname()[1]
        self.fillers: list[socket.socket] = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.05)

    def close(self) -> None:
        for sock in [*self.fillers, self.server]:
            sock.close()


def dead_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@dataclass
class Environment:
    """One emulator (a matrix run uses several, one per worker thread) and the broken
    addresses; connections are ``AIRFLOW_CONN_*`` variables made per cell."""

    emulator: Any
    bad_hosts: dict[str, str]
    prefix: str

    def connection(self, cell: Cell, serial: int, hostile: HostileServer | None) -> Any:
        """The connection one cell uses; its id is unique, so is its token cache entry."""
        from airflow.models.connection import Connection

        api, network = cell.api, cell.fault.network
        conn_type, secret = (
            ("writetext", WRITETEXT_KEY) if api == "writetext" else ("useapi", USEAPI_TOKEN)
        )
        host = self.emulator.url
        extra: dict[str, str] = {"api_version": "v3"} if api == "useapi_v3" else {}
        if api in SERVICES:
            extra["service"] = api
        bad_host = hostile.host if hostile is not None else None
        if network is not None:
            bad_host = self.bad_hosts[network]
        if bad_host is not None:
            if api == "writetext" and cell.call != "token":
                extra["region"] = bad_host
            else:
                host = f"http://{bad_host}"
        return Connection(
            conn_id=f"{self.prefix}_{serial}",
            conn_type=conn_type,
            host=host,
            password=secret,
            extra=json.dumps(extra),
        )

    def hostile_server(self, cell: Cell) -> HostileServer | None:
        """For a hostile row: a server in front of the emulator's port the call goes to."""
        if cell.fault.hostile is None:
            return None
        answer = hostile_answer(cell.fault.hostile)
        region_call = cell.api == "writetext" and cell.call != "token"
        port = self.emulator.region_port if region_call else self.emulator.port
        return HostileServer(
            lambda request: answer if request.call == cell.call else None,
            forward_to=("127.0.0.1", port),
        )


def start_emulator() -> Any:
    from airflow_provider_cancel.emulator import Emulator

    return Emulator(
        start_delay=0.05,
        cancel_delay=0.2,
        useapi_token=USEAPI_TOKEN,
        writetext_api_key=WRITETEXT_KEY,
    ).start()


@contextlib.contextmanager
def environments(count: int) -> Iterator[list[Environment]]:
    """``count`` started emulators sharing the broken addresses."""
    blackhole = Blackhole()
    bad_hosts = {
        "refused": f"127.0.0.1:{dead_port()}",
        "blackhole": f"127.0.0.1:{blackhole.port}",
        "dns": "nonexistent.invalid",
    }
    made: list[Environment] = []
    try:
        for n in range(count):
            made.append(Environment(start_emulator(), bad_hosts, f"rel_fault_{n}"))
        yield made
    finally:
        for env in made:
            env.emulator.stop()
        blackhole.close()


# ---------------------------------------------------------------------- running one cell


def make_hook(api: str, conn: Any, timeout: float) -> Any:
    from airflow_provider_cancel.hooks.useapi import UseApiHook
    from airflow_provider_cancel.hooks.writetext import WriteTextHook

    kind = WriteTextHook if api == "writetext" else UseApiHook
    hook = kind(conn.conn_id, timeout=timeout, **HOOK_PARAMS)
    hook.use_connection(conn)
    return hook


def invoke(hook: Any, method: str, job_id: str, mode: str) -> Any:
    if mode == "sync":
        try:
            return getattr(hook, method)(job_id)
        finally:
            hook.close()

    async def run() -> Any:
        try:
            return await getattr(hook, f"a{method}")(job_id)
        finally:
            await hook.aclose()

    return asyncio.run(run())


def _emulator_api(api: str) -> str:
    return "writetext" if api == "writetext" else "useapi"


def _delta(before: dict[str, Any], after: dict[str, Any], name: str) -> int:
    return int(after[name]) - int(before[name])


def secrets_of(emulator: Any) -> list[str]:
    with emulator.state.lock:
        issued = list(emulator.state.tokens)
    return [USEAPI_TOKEN, WRITETEXT_KEY, *issued]


def leaks(text: str, secrets: list[str]) -> bool:
    """True if any secret is in ``text``, raw or in any form a server may have echoed it."""
    return any(form in text for secret in secrets for form in secret_forms(secret))


def run_cell(env: Environment, cell: Cell, serial: int = 0) -> Outcome:
    hostile = env.hostile_server(cell)
    try:
        return _run_cell(env.emulator, cell, env.connection(cell, serial, hostile), hostile)
    finally:
        if hostile is not None:
            hostile.close()


def _run_cell(emulator: Any, cell: Cell, conn: Any, hostile: HostileServer | None) -> Outcome:
    fault, api, call, expected = cell.fault, cell.api, cell.call, cell.expected
    emulator.reset()
    job_id = f"rel:{api}:{call}/{cell.mode}"
    emulator.create_job(api, job_id, RUNNING_RAW[api])
    if fault.real_expiry:
        make_hook(api, conn, fault.timeout).get_job(job_id)  # caches an access token ...
        emulator.expire_tokens()  # ... that the emulator then forgets
    if fault.kind is not None:
        emulator.inject(
            fault.kind,
            count=fault.count,
            call=call,
            api=_emulator_api(api),
            retry_after=fault.retry_after,
            retry_after_json=fault.retry_after_json,
            hang_seconds=TIMEOUT * 4,
        )
    before = emulator.counters
    hook = make_hook(api, conn, fault.timeout)
    method = operation(call)

    started = time.monotonic()
    value: Any = None
    error: BaseException | None = None
    try:
        value = invoke(hook, method, job_id, cell.mode)
    except Exception as caught:  # every failure is judged below
        error = caught
    seconds = time.monotonic() - started
    after = emulator.counters
    emulator.clear_faults()

    problems: list[str] = []
    if error is not None:
        got = f"{type(error).__name__}: {error}"
    elif method == "cancel_job":
        got = f"outcome {value.outcome.value} (status {value.status.value})"
    else:
        got = f"status {value.status.value} (raw {value.raw_status})"

    if seconds > expected.bound:
        problems.append(f"took {seconds:.2f}s, bound {expected.bound:.2f}s")
    if seconds < expected.min_seconds:
        problems.append(f"took {seconds:.2f}s, Retry-After asked {expected.min_seconds}s")
    if expected.error is not None:
        if error is None:
            problems.append(f"expected {expected.error.__name__}, got a success")
        elif not isinstance(error, expected.error):
            problems.append(f"expected {expected.error.__name__}, got {type(error).__name__}")
        else:
            text = str(error)
            problems += [f"message lacks {s!r}" for s in expected.says if s not in text]
            if call != "token" and job_id not in text:
                problems.append("message does not name the job")
    elif error is not None:
        problems.append(f"expected {expected.result}, got an error")
    else:
        result = value.outcome.value if method == "cancel_job" else value.status.value
        if result != expected.result and result not in ALSO_RIGHT.get(expected.result or "", ()):
            problems.append(f"expected {expected.result}, got {result}")
    told = str(error) if error is not None else str(getattr(value, "message", ""))
    if leaks(told, secrets_of(emulator)):
        problems.append("a secret (in some encoding) is in the error or the report")
    shown = [told, str(getattr(value, "raw_status", "") or "")]
    if not all(text.isprintable() for text in shown):
        problems.append("a control or format character is in the error or the report")
    if max(map(len, shown)) > REPORT_BOUND:
        problems.append(f"{max(map(len, shown))} characters in the error or the report")

    faulted_calls = (
        hostile.seen(call=call)
        if hostile is not None
        else _delta(before, after, f"{call}_requests")
    )
    if expected.attempts is not None and faulted_calls != expected.attempts:
        problems.append(f"{call} requests: expected {expected.attempts}, saw {faulted_calls}")
    if hostile is not None and hostile.seen(path="/stolen"):
        problems.append("a redirect was followed")
    for counter, want in (
        ("token_requests", expected.token_requests),
        ("status_requests", expected.status_requests),
    ):
        if want is not None and _delta(before, after, counter) != want:
            problems.append(f"{counter}: expected {want}, saw {_delta(before, after, counter)}")
    if expected.job_after is not None:
        status = emulator.job(job_id)["normalized"]
        if status not in expected.job_after:
            problems.append(f"job reads {status} afterwards, expected {expected.job_after}")
    if any((e["path_job_id"] or job_id) != job_id for e in emulator.requests_log):
        problems.append("a request reached another job")
    return Outcome(cell, not problems, got, seconds, problems)


def cost(cell: Cell) -> float:
    """Rough seconds a cell takes, to start the slow ones first."""
    fault = cell.fault
    if fault.kind == "hang" or fault.network == "blackhole" or fault.hostile == "trickle":
        return (
            TIMEOUT
            * (ATTEMPTS if fault.persistent or fault.network else 1)
            * (2 if fault.hostile else 1)
        )
    return fault.retry_after or fault.retry_after_json or 0.01


def run_all(
    selected: list[Cell] | None = None,
    progress: Callable[[Outcome], None] | None = None,
    workers: int = 8,
) -> list[Outcome]:
    """Run cells on ``workers`` threads, each with its own emulator (faults are per
    emulator, so cells never see each other's faults). Results keep the cells' order."""
    import queue
    import threading

    todo = list(selected if selected is not None else cells())
    order = sorted(range(len(todo)), key=lambda i: -cost(todo[i]))
    pending: queue.Queue[int] = queue.Queue()
    for index in order:
        pending.put(index)
    results: dict[int, Outcome] = {}
    lock = threading.Lock()

    # Resolvers may drop concurrent queries for a name that does not exist (then each lookup
    # waits for the resolver's own timeout), so DNS cells run one at a time.
    dns = threading.Lock()

    def work(env: Environment) -> None:
        while True:
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            if todo[index].fault.network == "dns":
                with dns:
                    outcome = run_cell(env, todo[index], index)
            else:
                outcome = run_cell(env, todo[index], index)
            with lock:
                results[index] = outcome
                if progress is not None:
                    progress(outcome)

    with environments(max(1, min(workers, len(todo)))) as envs:
        threads = [threading.Thread(target=work, args=(env,)) for env in envs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return [results[i] for i in range(len(todo))]


def quiet_logs() -> None:
    """Retries log warnings and token fetches log info; the table is the output here."""
    logging.disable(logging.CRITICAL)
    try:
        import structlog
    except ImportError:  # Airflow 2: stdlib logging only
        return
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


# ---------------------------------------------------------------------- printing


COLUMNS = [
    ("useapi_v2", "cancel", "v2 cancel"),
    ("useapi_v2", "status", "v2 status"),
    ("useapi_v3", "cancel", "v3 cancel"),
    ("useapi_v3", "status", "v3 status"),
    ("faceswap", "cancel", "FS cancel"),
    ("faceswap", "status", "FS status"),
    ("flowmusic", "cancel", "FM cancel"),
    ("flowmusic", "status", "FM status"),
    ("kling", "cancel", "KL cancel"),
    ("writetext", "token", "WT token"),
    ("writetext", "cancel", "WT cancel"),
    ("writetext", "status", "WT status"),
]


def table(outcomes: list[Outcome]) -> str:
    """One row per fault, one column per API call; each cell shows sync/async: ok or FAIL."""
    by_key = {(o.cell.fault.name, o.cell.api, o.cell.call, o.cell.mode): o for o in outcomes}
    fault_names = list(dict.fromkeys(o.cell.fault.name for o in outcomes))
    faults = {f.name: f for f in FAULTS}
    width = max(len(name) for name in fault_names)
    header = f"{'fault':<{width}} | " + " | ".join(f"{c[2]:^9}" for c in COLUMNS)
    header += " | expected end (sync/async agree)"
    lines = [header, "-" * len(header)]
    for name in fault_names:
        marks, labels = [], []
        for api, call, _ in COLUMNS:
            pair = [by_key.get((name, api, call, mode)) for mode in MODES]
            if all(o is None for o in pair):
                marks.append(f"{'-':^9}")
                continue
            marks.append(f"{'/'.join('ok' if o and o.passed else 'FAIL' for o in pair):^9}")
            labels.append(next(o for o in pair if o).cell.expected.label)
        summary = " ; ".join(dict.fromkeys(labels))
        lines.append(f"{name:<{width}} | " + " | ".join(marks) + f" | {summary}")
        if faults[name].meaning:
            lines[-1] += f"  [{faults[name].meaning}]"
    return "\n".join(lines)


def summary(outcomes: list[Outcome]) -> str:
    passed = sum(o.passed for o in outcomes)
    seconds = sum(o.seconds for o in outcomes)
    slowest = max(outcomes, key=lambda o: o.seconds)
    return (
        f"cells passed: {passed} / {len(outcomes)} "
        f"({len(FAULTS)} faults x calls x APIs x sync/async; "
        f"retry_limit={RETRY_LIMIT}, retry_delay={RETRY_DELAY}, timeout {TIMEOUT:g}s for "
        f"hangs and trickles, {RELAXED_TIMEOUT:g}s otherwise; {seconds:.1f}s in calls, "
        f"slowest {slowest.seconds:.2f}s; bounds {TIME_BOUND:g}s for hangs, "
        f"{WHOLE_ANSWER_BOUND:g}s for trickles, {RELAXED_BOUND:g}s otherwise)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per cell")
    parser.add_argument("-k", default="", help="only cells whose id contains this text")
    parser.add_argument("-j", "--workers", type=int, default=8, help="parallel emulators")
    args = parser.parse_args(argv)
    quiet_logs()
    selected = [c for c in cells() if args.k in c.id]

    def progress(outcome: Outcome) -> None:
        if args.verbose:
            mark = "ok  " if outcome.passed else "FAIL"
            print(f"{mark} {outcome.seconds:5.2f}s {outcome.cell.id}: {outcome.got[:150]}")
            for problem in outcome.problems:
                print(f"       {problem}")
        else:
            print("." if outcome.passed else "F", end="", flush=True)

    started = time.monotonic()
    outcomes = run_all(selected, progress, args.workers)
    wall = time.monotonic() - started
    print("\n")
    print(table(outcomes))
    failed = [o for o in outcomes if not o.passed]
    if failed:
        print("\nFailed cells:")
        for outcome in failed:
            print(f"  {outcome.cell.id}: got {outcome.got[:200]}")
            for problem in outcome.problems:
                print(f"      {problem}")
    print()
    print(summary(outcomes))
    print(f"wall time {wall:.1f}s on {args.workers} worker(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
