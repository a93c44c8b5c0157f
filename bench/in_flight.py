"""What journaling a call in flight costs per call (issue: a call in flight when the
process dies was lost), next to the anchor: journaling the whole request record, as every
answered call is (and as the first version of this did before each call).

In-process, no network: the cascade's own ``_send`` (the call's row, the request's
columns, one short line appended to this process's write-ahead log in a temp dir), against
``_record(..., ahead=True)`` (the whole record built, encoded and appended). Alternating
rounds, medians (the machine's load moves both alike). Target: at most half of the
whole record's cost, measured in the same run.

    python bench/in_flight.py [--calls 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import QUERY, make_config

from cascadeflow_cli.engine.attempts import Attempt, PendingRequest
from cascadeflow_cli.engine.cascade import Cascade
from cascadeflow_cli.engine.recording import UNFINISHED
from cascadeflow_cli.ledger import journal
from cascadeflow_cli.ledger.db import open_ledger

TARGET_RATIO = 0.5  # of the whole record's cost


def _requests(cascade: Cascade, n: int) -> list[tuple[PendingRequest, Attempt]]:
    model = cascade.config.models["mini"]
    price = cascade.price(model)
    out = []
    for _ in range(n):
        req = PendingRequest(uuid.uuid4().hex, "alice", QUERY, None, None, None, cascade.clock.now(),
                             time.perf_counter())
        req.messages, req.max_tokens = [{"role": "user", "content": QUERY}], 1024
        attempt = Attempt(model, "draft", price, max_tokens=1024)
        req.attempts.append(attempt)
        out.append((req, attempt))
    return out


def _time(cascade: Cascade, n: int, journal_one: Callable[[PendingRequest, Attempt], None]) -> float:
    """Microseconds a call to journal ``n`` fresh requests' calls in flight."""
    batch = _requests(cascade, n)
    start = time.perf_counter()
    for req, attempt in batch:
        journal_one(req, attempt)
    elapsed = time.perf_counter() - start
    for req, _ in batch:
        journal.discard(cascade.ledger.path, req.id)  # type: ignore[union-attr]
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    config = make_config("http://127.0.0.1:9/v1")  # never called
    with tempfile.TemporaryDirectory() as tmp:
        ledger = open_ledger(Path(tmp) / "ledger.db")
        cascade = Cascade(config, ledger, gate=False)

        def short(req: PendingRequest, attempt: Attempt) -> None:
            cascade._send(req, attempt, 1024)

        def whole(req: PendingRequest, attempt: Attempt) -> None:
            attempt.in_flight_output = 1024
            cascade._record(req, status="interrupted", error=UNFINISHED, ahead=True)

        modes = {"short line (this)": short, "whole record": whole}
        for fn in modes.values():
            _time(cascade, 200, fn)  # warm up
        seen: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(args.rounds):
            for name, fn in modes.items():
                seen[name].append(_time(cascade, args.calls, fn))
        ledger.close()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds x {args.calls} calls; us per call")
    print(f"{'mode':<20} {'median':>8} {'min':>8} {'max':>8}")
    for name, times in seen.items():
        print(f"{name:<20} {statistics.median(times):8.1f} {min(times):8.1f} {max(times):8.1f}")
    ours, anchor = statistics.median(seen["short line (this)"]), statistics.median(seen["whole record"])
    verdict = "OK" if ours <= TARGET_RATIO * anchor else "OVER"
    print(f"verdict: {verdict}: a call in flight costs {ours:.1f} us to journal, {ours / anchor:.2f} x "
          f"the whole record's {anchor:.1f} us (target <= {TARGET_RATIO} x)")


if __name__ == "__main__":
    main()
