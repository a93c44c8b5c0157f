"""Which reservations of this host are stale: judged by liveness, never by the wall clock.

Every backend's expiry check asks ``is_stale`` / ``stale_here``; the budget gate notes the
reservations this process makes (``hold_own``) and forgets them when settled or released."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime

from cascadeflow_cli.clock import parse_ts
from cascadeflow_cli.ledger import journal

# This process's reservations: id -> deadline on its monotonic clock. A reservation made on
# this host is judged by liveness, never by the wall clock: its maker settles or releases it,
# and this process judges its own by time.monotonic(). A wall clock moved forward (NTP, a
# resumed VM, a process whose clock runs ahead) expired live reservations by expires_at, and
# the requests they held for were let through again: $0.86 spent of a $0.60 total budget.
_held: dict[str, float] = {}
_held_lock = threading.Lock()


def hold_own(reservation_id: str, ttl_s: float) -> None:
    """Note a reservation this process makes, with its deadline in monotonic time."""
    now = time.monotonic()
    with _held_lock:
        _held[reservation_id] = now + ttl_s
        while _held:  # drop the oldest past their deadline: a served process makes millions
            first = next(iter(_held))
            if _held[first] > now:
                break
            del _held[first]


def forget_own(reservation_id: str | None) -> None:
    """Stop timing a reservation this process settled or released (or left to the journal,
    whose recovery settles it): what is noted stays bounded by the requests in flight."""
    if reservation_id is not None:
        with _held_lock:
            _held.pop(reservation_id, None)


def stale_here(reservation_id: str, pid: int | None, expired: bool) -> bool:
    """A reservation made on this host to drop: this process's past its monotonic deadline,
    another's whose process is gone. One with this process's pid that it did not make (a
    dead process's pid reused) goes by ``expired``, its expiry on the wall clock, as before."""
    if pid == os.getpid():
        with _held_lock:
            deadline = _held.get(reservation_id)
        return expired if deadline is None else deadline <= time.monotonic()
    return gone(pid)


def is_stale(reservation_id: str, expires_at: str, pid: int | None, host: str | None, now: datetime,
             this_host: str) -> bool:
    """A reservation to drop (for every backend's expire_reservations): one of this host's
    as ``stale_here`` judges it; another host's past its expiry (a pid there means nothing here)."""
    expired = parse_ts(expires_at) <= now
    return stale_here(reservation_id, pid, expired) if host == this_host else expired


def gone(pid: int | None) -> bool:
    """A process of this host whose reservation is to be dropped: dead, and no log of it
    waits in the journal (a call it had in flight there takes the reservation's place
    when recovered: journal.left_by)."""
    return not _alive(pid) and not (pid and journal.left_by(pid))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
