"""Streaming a cascade's answer: the one implementation behind `cascade ask --stream`
and `cascade serve`'s ``"stream": true``.

A draft is never shown before the validator has judged it (a reader cannot be shown an
answer that may be withdrawn): drafts are asked for whole. An accepted draft is then
sent in pieces of a few words; when the cascade escalates, the final model's tokens go
out as they arrive (``Cascade.run(sink=...)`` streams that model's call). A reader that
leaves mid-stream cancels the sink: the provider's connection is closed, the partial
answer is priced (the provider's usage if it came, else counted tokens, marked
estimated) and recorded as interrupted, and the budget reservation is settled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from cascadeflow_cli.engine.providers.stream import StreamInterrupted, StreamSink

if TYPE_CHECKING:
    from cascadeflow_cli.engine.cascade import CascadeResult

__all__ = ["StreamInterrupted", "StreamSink", "pieces", "stream_answer"]

PIECE_WORDS = 4  # an accepted draft goes out in pieces of this many words


def pieces(text: str, words: int = PIECE_WORDS) -> list[str]:
    """``text`` in pieces of a few words each, whitespace kept (they join back to it)."""
    found = re.findall(r"\s*\S+\s*", text)
    if not found:
        return [text] if text else []
    return ["".join(found[i : i + words]) for i in range(0, len(found), words)]


def stream_answer(
    run: Callable[[StreamSink], CascadeResult],
    sink: StreamSink,
    on_whole: Callable[[CascadeResult], None] | None = None,
) -> CascadeResult:
    """Run the cascade (``run(sink)`` calls ``Cascade.run(..., sink=sink)``) with every
    piece of the answer written into ``sink`` as soon as it may be shown. A reader that
    left (``sink.cancel()``, from any thread) raises StreamInterrupted; if it left during
    the final model's call, the request is recorded as interrupted. ``on_whole`` hears of
    an answer that is complete (and recorded) before its first piece goes out: an accepted
    draft, whose cost a server can then put in its response headers."""
    result = run(sink)
    if not sink.sent:  # an accepted draft (or a final model that did not stream): send it now
        if on_whole is not None:
            on_whole(result)
        for piece in pieces(result.answer):
            sink.delta(piece)
    return result
