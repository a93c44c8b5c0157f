"""`cascade ask --stream`: the answer printed as it arrives (engine/streaming.py, the same
streaming `cascade serve` uses): an accepted draft once judged, an escalated answer token
by token from the final model."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.text import escape_controls

if TYPE_CHECKING:
    from cascadeflow_cli.engine.cascade import Cascade, CascadeResult


def ask_streamed(cascade: Cascade, query: str, user: str, **kwargs: Any) -> CascadeResult:
    """Run ``query`` with the answer written to stdout piece by piece; ends the line."""
    from cascadeflow_cli.engine.streaming import StreamInterrupted, StreamSink, stream_answer

    written: list[str] = []
    failed: list[OSError] = []

    terminal = sys.stdout.isatty()

    def write(text: str) -> None:
        written.append(text)
        try:
            sys.stdout.write(escape_controls(text) if terminal else text)  # ask.py says why
            sys.stdout.flush()
        except OSError as exc:
            # stdout went away (`| head`, a full disk, /dev/full): the reader left, so the
            # provider's stream is closed and what it generated priced and recorded as
            # interrupted. The OSError passed through the provider untouched: the final
            # model's call, streamed and paid, was in no ledger.
            failed.append(exc)
            raise StreamInterrupted("the output could not be written") from None

    try:
        result = stream_answer(lambda sink: cascade.run(query, user, sink=sink, **kwargs), StreamSink(write))
    except StreamInterrupted:
        if failed:  # recorded: now the output error, as main() words it (a closed pipe: exit 0)
            raise failed[0] from None
        raise
    if not "".join(written).endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    return result
