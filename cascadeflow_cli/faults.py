"""Pause points for the fault-injection tests, on the real code path.

``checkpoint(step)`` does nothing unless ``$CASCADE_FAULT_PAUSE`` names ``step`` (a
comma-separated list). Then it creates the file ``$CASCADE_FAULT_PAUSED`` (holding the
step's name) and waits, up to 60 s, until the file ``$CASCADE_FAULT_RESUME`` exists, so a
test can send a signal, fill the disk or lock the ledger at exactly that step. The steps
of one request, in order (tests/faults/ runs each against each fault):

- ``before-reserve``: the keys checked; the ledger's writability not yet, nothing reserved
  or sent
- ``after-reserve``: reserved, the provider not called yet (the call itself is slowed
  with the replay server's latency)
- ``after-call``: every call answered and written ahead to the journal, not committed
- ``in-commit``: inside the ledger transaction, rows inserted, COMMIT not yet run

It costs one dictionary lookup when unused (os.environ's own mapping).
"""

from __future__ import annotations

import os
import time
from typing import Any

PAUSE_VAR, PAUSED_VAR, RESUME_VAR = "CASCADE_FAULT_PAUSE", "CASCADE_FAULT_PAUSED", "CASCADE_FAULT_RESUME"
STEPS = ("before-reserve", "after-reserve", "after-call", "in-commit")
MAX_PAUSE_S = 60.0


# os.environ's own mapping (bytes on POSIX): a name it lacks is one dict lookup there, where
# os.environ.get raises and catches a KeyError (2.0 µs; a served request has four checkpoints)
_environ: dict[Any, Any] | None = getattr(os.environ, "_data", None)
_PAUSE_KEY = os.environ.encodekey(PAUSE_VAR) if _environ is not None else None  # type: ignore[attr-defined]


def checkpoint(step: str) -> None:
    if _environ is not None and _PAUSE_KEY not in _environ:
        return
    spec = os.environ.get(PAUSE_VAR)
    if not spec or step not in spec.split(","):
        return
    paused, resume = os.environ.get(PAUSED_VAR), os.environ.get(RESUME_VAR)
    if paused:
        with open(paused, "w", encoding="utf-8") as fh:
            fh.write(step)
    deadline = time.monotonic() + MAX_PAUSE_S
    while time.monotonic() < deadline and not (resume and os.path.exists(resume)):
        time.sleep(0.01)  # a signal interrupts this sleep like any other
