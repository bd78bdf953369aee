"""``python -m airflow_provider_cancel.emulator``: run the emulator as its own process.

Demos and benchmarks run it out of process so that its threads do not compete with the code under
measurement. It prints one ``emulator listening on ...`` line (the readiness signal callers wait
for) and serves until SIGTERM or SIGINT, then exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .catalog import DISCORD, JOBS, SERVICES, model_key
from .facade import Emulator
from .state import FINISHED_CANCEL_ANSWERS, Config

DEFAULTS = Config()


#: The options that set a :class:`~.state.Config` field (named like it), in ``--help`` order.
SETTING_HELP = {
    "latency": "seconds added to every API request",
    "start_delay": "seconds before a new job leaves created/Pending (useapi: created, started after "
    "it, progress after twice it; WriteText: Pending, then Running)",
    "cancel_delay": "seconds a cancelled WriteText request stays Cancelling before Cancelled "
    "(useapi jobs are cancelled at once)",
    "job_duration": "seconds after which a job that was not cancelled completes",
    "token_ttl": "lifetime of WriteText access tokens (s)",
    "useapi_token": "the useapi.net API token accepted (Authorization: Bearer ...)",
    "writetext_api_key": "the WriteText API key accepted by the token endpoint "
    "(WriteTextAI-Token header)",
    "finished_cancel_answer": "HTTP status useapi answers to a cancel of a job that already ended",
}
CHOICES = {"finished_cancel_answer": FINISHED_CANCEL_ANSWERS}
SERVICE_LIST = ", ".join(
    [f"midjourney v2 ({DISCORD}: useapi_v2)", f"midjourney v3 ({JOBS}: useapi_v3)"]
    + [f"{spec.name} {spec.version} ({spec.family}: {model_key(spec)})" for spec in SERVICES]
)


def _fault(text: str) -> tuple[str, int | None, float | None]:
    """``KIND:RATE`` (``429:0.1``, a share of requests) or ``KIND:COUNT`` (``500:3``).

    Returns ``(kind, count, rate)``.
    """
    kind, _, amount = text.partition(":")
    if not amount:
        return kind, 1, None
    if "." in amount or "e" in amount.lower():
        return kind, None, float(amount)
    return kind, int(amount), None


def build_parser() -> argparse.ArgumentParser:
    """The command line; every setting's default comes from :class:`~.state.Config`."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_cancel.emulator",
        description="Emulate useapi.net (Midjourney v2, v3 and the services below) and "
        "WriteText.ai locally. The main "
        "port serves useapi.net, WriteText's token endpoint and the /_emulator/ control "
        "endpoints; WriteText's /text/... calls are served on a second (region) port, which "
        "the token endpoint hands out. Prints one 'emulator listening on URL (region HOST)' "
        "line, then serves until Ctrl-C or SIGTERM. See docs/emulator.md for curl examples.",
        epilog="Fault kinds: 429, 500, 502, 503, 504, 596 (useapi moderation), html (a 502 "
        "HTML page), html200 (an HTML page with 200), malformed (truncated JSON), empty (an "
        "empty 200), drop (connection closed), hang (no answer for 30 s, then closed), "
        "expired_token (WriteText 401 invalid_token), 403 (another account's job), 410 "
        "(expired). Also at run time: POST /_emulator/faults. useapi.net services (family: "
        'job key for POST /_emulator/jobs {"api": KEY}): ' + SERVICE_LIST + ".",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8765,
        help="main port (useapi, WriteText token); 0 = any free (default: %(default)s)",
    )
    parser.add_argument(
        "--region-port",
        type=int,
        default=0,
        help="WriteText region port; 0 = any free port (default: %(default)s)",
    )
    for name, text in SETTING_HELP.items():
        default = getattr(DEFAULTS, name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=default,
            choices=CHOICES.get(name),
            help=text + " (default: %(default)s)",
        )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:RATE|KIND:COUNT",
        help="inject a fault into API requests, e.g. 429:0.1 (10%% of them) or 500:3 (the next "
        "3); repeatable; kinds below (default: none)",
    )
    parser.add_argument(
        "--fault-call",
        default=None,
        choices=("token", "cancel", "status", "submit", "list", "other", "any"),
        help="restrict --fault to one kind of call (default: every call)",
    )
    parser.add_argument(
        "--retry-after",
        type=float,
        default=None,
        help="Retry-After seconds sent with injected 429s (default: no header)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed of rate-based faults (repeatable runs) (default: %(default)s)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every request to stderr (default: off)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT; returns the exit code."""
    args = build_parser().parse_args(argv)
    settings = {name: getattr(args, name) for name in Config.names() if hasattr(args, name)}
    emulator = Emulator(
        args.host, args.port, args.region_port, seed=args.seed, verbose=args.verbose, **settings
    )
    for text in args.fault:
        kind, count, rate = _fault(text)
        emulator.inject(
            kind, count=count, rate=rate, call=args.fault_call, retry_after=args.retry_after
        )

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emulator.start()
    print(f"emulator listening on {emulator.url} (region {emulator.region})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
