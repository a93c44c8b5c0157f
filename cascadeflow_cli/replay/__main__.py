"""Run the replay server in the foreground: ``python -m cascadeflow_cli.replay``.

Prints one line, ``listening on http://127.0.0.1:PORT/v1``, once it accepts requests, so a
script in another process can read the port; stops on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from cascadeflow_cli.replay.server import ModelBehavior, Recordings, ReplayServer, load_recordings


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cascadeflow_cli.replay",
        description="Local OpenAI-compatible server that replays recorded answers.",
    )
    parser.add_argument(
        "--recordings",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="JSONL file(s) of recorded answers (demo or GSM8K replay shape)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="S", help="seconds to wait per answer"
    )
    # like providers that do not offer the live quality signals (issue 9)
    parser.add_argument("--ignore-logprobs", action="store_true", help="never return log-probabilities")
    parser.add_argument("--ignore-n", action="store_true", help="always return one choice, whatever n says")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    recordings = Recordings()
    for path in args.recordings:
        recordings.merge(load_recordings(path))
    server = ReplayServer(
        recordings,
        host=args.host,
        port=args.port,
        default=ModelBehavior(
            latency_s=args.latency, honor_logprobs=not args.ignore_logprobs, honor_n=not args.ignore_n
        ),
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM -> KeyboardInterrupt
    with server:
        print(f"listening on {server.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
