"""A request whose caller may leave: the one cancel seam between whoever waits for an
answer (an HTTP client of `cascade serve`, a terminal reading a stream) and the
provider calls made for it.

``cancel()`` may come from any thread at any moment: the provider connection in use
(``opened(close)``) is closed at once, the call raises, and the cascade asks no further
model (engine/cascade.py): what was already paid for is priced and recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

GONE = "the client disconnected"


class Cancellation:
    """Set once the caller has left; ``reason`` says why (recorded as the request's error)."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._close: Callable[[], None] | None = None
        self.reason = GONE

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def opened(self, close: Callable[[], None] | None) -> None:
        """A provider connection is in use (``close`` aborts it) or, with None, done."""
        with self._lock:
            self._close = close
            if close is not None and self._cancelled.is_set():
                close()

    def cancel(self, reason: str = GONE) -> None:
        """From any thread: mark the caller gone and close the provider's connection.
        The close runs under the lock, so once ``opened(None)`` has returned no close of
        that connection can come (it may be reused by another request)."""
        with self._lock:
            self.reason = reason
            self._cancelled.set()
            if self._close is not None:
                self._close()
