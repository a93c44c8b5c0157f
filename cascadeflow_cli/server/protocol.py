"""uvicorn's HTTP protocol for `cascade serve`, answering a request it cannot parse in
OpenAI's error shape. uvicorn's own answer is a text/plain 400 ("Invalid HTTP request
received."), which the openai SDK and every client written for OpenAI's API cannot read as
an error: a request with both Content-Length and Transfer-Encoding (RFC 9112 §6.3: a
request smuggling vector, refused), a malformed request line or header. Imported only by
`cascade serve` (uvicorn is its extra)."""

from __future__ import annotations

import json
import sys

from uvicorn.protocols.http.auto import AutoHTTPProtocol  # httptools when installed, else h11

from cascadeflow_cli.server.shapes import bad_request, both_lengths


def parse_error_message(exc: BaseException | None) -> str:
    """One line saying why the request could not be parsed, from the parser's error."""
    detail = " ".join(str(exc).split()) if exc is not None else ""
    words = detail.lower().replace("-", " ").replace("_", " ")
    if "content length" in words and "transfer encoding" in words:
        return both_lengths()
    return "the request is not valid HTTP" + (f": {detail[:200]}" if detail else "")


class OpenAIErrorsProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's protocol with its 400 for an unparsable request as a JSON error body."""

    def send_400_response(self, msg: str) -> None:
        # called from the parser's except clause: the error in hand says why
        body = json.dumps(bad_request(parse_error_message(sys.exc_info()[1])).body()).encode()
        head = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(head + body)
        self.transport.close()
