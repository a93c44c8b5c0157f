"""Trace context from a caller: a W3C ``traceparent`` header (and ``tracestate``) as the
parent of a request's span, so `cascade serve` continues the trace of whoever called it.
No OpenTelemetry import: both export paths take a ``Parent``.

    parent = parent_from_traceparent(headers.get("traceparent"), headers.get("tracestate"))
    on_record(record, parent)        # None (absent or malformed header): a trace of its own
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# version 00: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>; a later version may
# append fields after a dash (W3C Trace Context, "versioning of traceparent")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
SAMPLED = 0x01
MAX_TRACESTATE = 512  # the spec's limit a vendor must keep; longer is dropped, not cut


@dataclass(frozen=True)
class Parent:
    """Where a request's trace hangs: the caller's span."""

    trace_id: int
    span_id: int
    sampled: bool = True
    remote: bool = True
    trace_state: str = ""

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{SAMPLED if self.sampled else 0:02x}"


def parent_from_traceparent(traceparent: str | None, tracestate: str | None = None) -> Parent | None:
    """The caller's span from its headers, or None when the header is absent or invalid
    (the spec: a receiver that cannot parse it starts a new trace). Version ff, an
    all-zero trace or span id, and extra fields on version 00 are invalid."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = (tracestate or "").strip()
    if len(state) > MAX_TRACESTATE:
        state = ""
    return Parent(trace_id, span_id, bool(int(flags_hex, 16) & SAMPLED), True, state)
