"""ids.py: a random id has uuid4().hex's form (32 hex digits, version 4, RFC 4122 variant)."""

from __future__ import annotations

import uuid

from cascadeflow_cli.ids import random_id


def test_a_random_id_reads_as_a_uuid4() -> None:
    ids = {random_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122
