"""uvicorn's httptools protocol with a response's status line and headers sent in the same
write as its first body bytes: one ``send`` system call an answer instead of two.

uvicorn writes the head when the app sends ``http.response.start`` and the body when it
sends ``http.response.body``, each straight to the socket. On loopback every send also
wakes the reader, so an answer cost two sends and two wake-ups of the client (py-spy,
50 clients: the head's write alone was 4.7% of the server's samples). Here the head is
held by the connection's transport until the next write, which comes in the same step
of the loop (Starlette's ``Response`` sends both messages without yielding); a loop
callback sends it anyway if nothing follows in that step, so a head is never kept
waiting (an interim ``100 Continue`` is never held).

Importing this module imports uvicorn: only `serve` does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeadFirst:
    """A transport that holds a response head until the write that follows it."""

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._loop = loop

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif is_response_head(data):
            self._head = data
            self._loop.call_soon(self.flush)  # nothing followed in this step: send it alone
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def is_response_head(data: bytes) -> bool:
    """A final response's status line and headers, with nothing after them (not an
    interim ``1xx``, not a whole response written at once)."""
    return data.startswith(b"HTTP/1.1 ") and data[9:10] != b"1" and data.endswith(b"\r\n\r\n")


class OneWriteProtocol(HttpToolsProtocol):  # type: ignore[misc]
    """``uvicorn.Config(http=OneWriteProtocol)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_HeadFirst(transport, self.loop))  # type: ignore[arg-type]
