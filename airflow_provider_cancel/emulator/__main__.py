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

from .server import Emulator


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
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_cancel.emulator",
        description="Emulate useapi.net Midjourney (v2, v3) and WriteText.ai locally.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--region-port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per API request")
    parser.add_argument("--start-delay", type=float, default=0.2)
    parser.add_argument("--cancel-delay", type=float, default=1.0)
    parser.add_argument("--job-duration", type=float, default=300.0)
    parser.add_argument("--token-ttl", type=int, default=86400)
    parser.add_argument("--useapi-token", default="emulator-useapi-token")
    parser.add_argument("--writetext-api-key", default="emulator-writetext-key")
    parser.add_argument(
        "--finished-cancel-answer", choices=("200", "400", "404", "409"), default="200"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:RATE|KIND:COUNT",
        help="inject a fault, e.g. 429:0.1 (10%% of API requests) or 500:3 (next 3); repeatable",
    )
    parser.add_argument("--fault-call", default=None, help="restrict --fault to one call kind")
    parser.add_argument("--retry-after", type=float, default=None, help="Retry-After of 429s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    emulator = Emulator(
        host=args.host,
        port=args.port,
        region_port=args.region_port,
        latency=args.latency,
        job_duration=args.job_duration,
        start_delay=args.start_delay,
        cancel_delay=args.cancel_delay,
        token_ttl=args.token_ttl,
        useapi_token=args.useapi_token,
        writetext_api_key=args.writetext_api_key,
        finished_cancel_answer=args.finished_cancel_answer,
        seed=args.seed,
        verbose=args.verbose,
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
