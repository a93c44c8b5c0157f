"""Random ids: a request's, a reservation's."""

from __future__ import annotations

import os


def random_id() -> str:
    """What ``uuid.uuid4().hex`` returns (32 hex digits, version 4, RFC 4122 variant),
    without building a UUID: 1.1 µs, not 5.0 (a served request makes two)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()
