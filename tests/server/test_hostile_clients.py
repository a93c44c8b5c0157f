"""Hostile clients of `cascade serve` (hostile-20): a body that never comes, headers that
never end, messages that say more than they should. Each gets OpenAI's error shape (or,
gone, a 499 in the access log), never a traceback, and nothing is paid for."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from cascadeflow_cli.server import ServeSettings, build_app
from tests.cli.support import QUERY, wait_until
from tests.conftest import GOOD_ANSWER, ledger_rows
from tests.server.conftest import Stack, ThreadServer, make_key, write_config
from tests.server.test_errors import assert_error

BODY = {"model": "cascade", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


@pytest.fixture
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """What uvicorn logs as errors ("Exception in ASGI application" and its traceback)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _port(stack: Stack) -> int:
    return int(stack.url.removesuffix("/v1").rsplit(":", 1)[1])


def _wait_for_log(stack: Stack, lines: int = 1) -> None:
    deadline = time.monotonic() + 10
    while len(stack.log) < lines and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_client_that_leaves_before_its_body_is_a_499_not_a_500_with_a_traceback(
    stack: Stack, server_errors: list[logging.LogRecord]
) -> None:
    # read_body raised Starlette's ClientDisconnect past the endpoint: uvicorn logged
    # "Exception in ASGI application" with its traceback, the access log said 500
    body = json.dumps(BODY).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stack.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) + 500}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", _port(stack)), timeout=10) as sock:
        sock.sendall(head + body)  # 500 bytes short
        time.sleep(0.3)
    _wait_for_log(stack)
    [line] = stack.log
    assert " 499 " in line, line
    assert [r.getMessage() for r in server_errors] == []
    assert ledger_rows(stack.db, "requests") == []


class ProtocolServer(ThreadServer):
    """``app`` under uvicorn with `cascade serve`'s own HTTP protocol (server/protocol.py)."""

    def __init__(self, app: object, loop: str = "auto") -> None:
        import uvicorn

        from cascadeflow_cli.server.protocol import OpenAIErrorsProtocol

        super().__init__(app)
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                                http=OpenAIErrorsProtocol, loop=loop)  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)


@pytest.fixture
def guarded(tmp_path: Path, server: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A Stack served through the protocol, its headers' deadline 1 s (30 s in `serve`)."""
    monkeypatch.setattr("cascadeflow_cli.server.protocol.HEAD_TIMEOUT_S", 1.0)
    config, db = write_config(tmp_path, server), tmp_path / "ledger.db"
    key = make_key(config, db)
    log: list[str] = []
    app = build_app(ServeSettings(str(config), str(db), concurrency=4), write_log=log.append)
    with ProtocolServer(app) as srv:
        yield Stack(f"http://127.0.0.1:{srv.port}/v1", key, db, config, server, log)


def _exchange(stack: Stack, parts: list[bytes], pause: float = 0.0) -> tuple[bytes, float]:
    """Send ``parts`` (``pause`` s apart, stopping if the server closes), then read to EOF."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", _port(stack)), timeout=20) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except OSError:  # closed on us: what it said is read below
                break
            time.sleep(pause)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data, time.monotonic() - started


def _status_and_error(data: bytes) -> tuple[int, dict[str, object]]:
    status_line, _, rest = data.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower(), data
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return int(status_line.split()[1]), error


def test_headers_sent_a_line_a_while_are_cut_at_the_deadline(guarded: Stack) -> None:
    # slowloris: uvicorn has no deadline for a request's headers; a header line every second
    # held the connection (and its file descriptor) for as long as the client liked
    lines = [b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"] + [b"X-%d: a\r\n" % i for i in range(20)]
    data, took = _exchange(guarded, lines, pause=0.25)
    status, error = _status_and_error(data)
    assert status == 408 and error["code"] == "timeout", error
    assert took < 4, took
    assert ledger_rows(guarded.db, "requests") == []


def test_an_idle_connection_is_closed_at_the_deadline_and_a_prompt_one_is_answered(guarded: Stack) -> None:
    data, took = _exchange(guarded, [])
    assert data == b"" and 0.8 < took < 4, (data, took)
    # a request whose headers and body come in time, on a connection kept alive past the
    # deadline between its requests, is answered each time
    with httpx.Client(timeout=20) as client:
        for _ in range(2):
            answered = client.post(f"{guarded.url}/chat/completions", json=BODY,
                                   headers={"Authorization": f"Bearer {guarded.key}"})
            assert answered.status_code == 200, answered.text
            time.sleep(1.3)
    assert len(ledger_rows(guarded.db, "requests")) == 2


def test_an_endless_header_is_a_431_not_the_server_s_memory(guarded: Stack) -> None:
    # with httptools, one header line sent without end took serve to 565 MB and a core
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: "
    data, _ = _exchange(guarded, [head] + [b"a" * 65536] * 64)
    status, error = _status_and_error(data)
    assert status == 431 and error["code"] == "headers_too_large" and "64 KB" in str(error["message"]), error
    # headers under the limit (a long traceparent, many small headers) are served
    headers = {"Authorization": f"Bearer {guarded.key}", **{f"x-{i}": "v" * 100 for i in range(100)}}
    answered = httpx.post(f"{guarded.url}/chat/completions", json=BODY, headers=headers, timeout=20)
    assert answered.status_code == 200, answered.text


def test_what_errors_say_is_what_the_client_needs(stack: Stack) -> None:
    # the 401's hint read "send 'Authorization: Bearer [redacted]'" (redacted as a key)
    missing = assert_error(httpx.post(f"{stack.url}/chat/completions", json=BODY, timeout=20), 401)
    assert "Authorization: Bearer" in str(missing["message"]) and "redacted" not in str(missing["message"])
    # a 5,000-digit number was "not valid JSON: ... use sys.set_int_max_str_digits() to increase
    # the limit", advice to a Python programmer
    body = json.dumps(BODY).encode().replace(b"{", b'{"seed": ' + b"9" * 5000 + b", ", 1)
    headers = {"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"}
    long_int = assert_error(httpx.post(f"{stack.url}/chat/completions", content=body, headers=headers,
                                       timeout=20), 400, "not valid JSON")
    assert "sys." not in str(long_int["message"]), long_int
    # an unknown model's name of 100 KB came back whole in the 404
    unknown = assert_error(stack.post({**BODY, "model": "m" * 100_000}), 404, "does not exist")
    assert len(str(unknown["message"])) < 300, len(str(unknown["message"]))
    assert ledger_rows(stack.db, "requests") == []


def test_pipelined_requests_whose_client_hangs_up_leave_no_traceback(
    guarded: Stack, server_errors: list[logging.LogRecord]
) -> None:
    # uvicorn marks only the latest parsed request as disconnected: the running one, with
    # two pipelined behind it, wrote to the closed socket and logged a RuntimeError traceback
    body = json.dumps(BODY).encode()
    one = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guarded.key}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", _port(guarded)), timeout=20) as sock:
            sock.sendall(one * 3)
            sock.close()  # gone before any answer (its FIN; our first write draws an RST)
    deadline = time.monotonic() + 10
    while len(ledger_rows(guarded.db, "requests")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert [r.getMessage() for r in server_errors] == []
    # the first of each three ran (it is recorded, as any request whose client left); the
    # write of its answer failed, so at most the next one behind it had started
    assert 3 <= len(ledger_rows(guarded.db, "requests")) <= 6
    # a client that half-closed after its three requests is still reading: all are answered
    with socket.create_connection(("127.0.0.1", _port(guarded)), timeout=20) as sock:
        sock.sendall(one * 3)
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while part := sock.recv(65536):
            got += part
    assert got.count(b"HTTP/1.1 200 ") == 3 and got.count(b'"chat.completion"') == 3
    assert [r.getMessage() for r in server_errors] == []


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"response_format": {"type": "json_object"}}, "response_format"),
     ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
     ({"logprobs": True, "top_logprobs": 3}, "logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
     ({"modalities": ["text", "audio"]}, "modalities"), ({"web_search_options": {}}, "web_search_options")],
)
@pytest.mark.parametrize("stream", [False, True])
def test_what_the_answer_would_silently_lack_is_refused(
    stack: Stack, extra: dict[str, object], param: str, stream: bool
) -> None:
    # each was ignored: JSON mode got prose, logprobs came back null
    error = assert_error(stack.post({**BODY, **extra, "stream": stream}), 400, "not supported")
    assert error["param"] == param and error["code"] == "unsupported_feature", error
    assert ledger_rows(stack.db, "requests") == []


def test_the_same_fields_asking_for_nothing_are_served(stack: Stack) -> None:
    # what SDKs send when the feature is off: accepted as before
    off = {"response_format": {"type": "text"}, "logprobs": False, "top_logprobs": 0, "stop": None,
           "modalities": ["text"], "web_search_options": None}
    completion = stack.client().chat.completions.create(
        model="cascade", messages=BODY["messages"], **off  # type: ignore[arg-type]
    )
    assert completion.choices[0].message.content
    assert stack.post({**BODY, "stop": []}).status_code == 200
    assert stack.post({**BODY, "stop": ""}).status_code == 200
    assert all("stop" not in body for body in stack.replay.requests)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("stop", "sent"), [("\n", ["\n"]), (["Observation:", "\nUser:"], ["Observation:", "\nUser:"])]
)
def test_stop_sequences_are_passed_to_every_model_asked(
    stack: Stack, stop: object, sent: list[str], stream: bool
) -> None:
    # hostile-20 refused `stop` rather than drop it; LangChain's agents send it on every call,
    # so it is passed on: each model the cascade asks (the draft, and the verifier if it
    # escalates) gets the client's sequences
    client = stack.client()
    kwargs = {"model": "cascade", "messages": BODY["messages"], "stop": stop}
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            stream=True, **kwargs) if c.choices)  # type: ignore[call-overload]
    else:
        text = client.chat.completions.create(**kwargs).choices[0].message.content  # type: ignore[call-overload]
    assert text
    assert stack.replay.requests and all(body.get("stop") == sent for body in stack.replay.requests)


def test_a_shadow_verifier_is_asked_with_the_clients_stop_too(stack_factory: object) -> None:
    # the shadow judges the accepted draft against the verifier's answer: asked without the
    # client's stop, the verifier ran on past it and the agreement read the difference
    from cascadeflow_cli.engine import shadow

    stack = stack_factory(extra="\n[quality]\nshadow_rate = 1.0\n")  # type: ignore[operator]
    stack.replay.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
    answer = stack.client().chat.completions.create(
        model="cascade", messages=[{"role": "user", "content": QUERY}], stop=["Observation:"]
    )
    assert answer.cascade["draft_accepted"]  # type: ignore[attr-defined]
    assert shadow.wait_pending(30) == 0
    wait_until(lambda: stack.replay.request_count() >= 2, timeout=30)
    assert [body.get("stop") for body in stack.replay.requests] == [["Observation:"]] * 2


@pytest.mark.parametrize(
    ("stop", "says"),
    [(5, "a string or an array"), (["a", 1], "a string or an array"), ({"x": 1}, "a string or an array"),
     (["a", "b", "c", "d", "e"], "at most 4"), (["a", ""], "non-empty"), (["\ud800"], "non-empty Unicode")],
)
def test_a_bad_stop_is_a_400_and_costs_nothing(stack: Stack, stop: object, says: str) -> None:
    raw = json.dumps({**BODY, "stop": stop})  # ASCII: a lone surrogate goes as its \\u escape
    headers = {"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"}
    answer = httpx.post(f"{stack.url}/chat/completions", content=raw, headers=headers, timeout=20)
    error = assert_error(answer, 400, says)
    assert error["param"] == "stop", error
    assert ledger_rows(stack.db, "requests") == [] and stack.replay.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_named_outside_latin1_answers_with_its_name_percent_encoded_in_the_header(
    stack_factory: object, server: ReplayServer, server_errors: list[logging.LogRecord], stream: bool
) -> None:
    # headers go out as Latin-1: every answer of a model named "模型" was a 500, after it was paid
    extra = f'[[models]]\nname = "模型"\nmodel = "openai/gpt-4o-mini"\napi_base = "{server.base_url}"\n'
    stack: Stack = stack_factory(extra_models=extra)  # type: ignore[operator]
    response = stack.post({**BODY, "model": "模型", "stream": stream})
    assert response.status_code == 200, response.text
    assert response.headers["x-cascade-model"] == "%E6%A8%A1%E5%9E%8B"
    assert "模型" in response.text  # the body says it as it is
    assert [r.getMessage() for r in server_errors] == []
    [row] = ledger_rows(stack.db, "requests")
    assert row["model"] == "模型" and row["status"] == "ok", row


def test_a_limited_key_whose_window_cannot_be_written_is_a_503_not_a_500(
    stack: Stack, server_errors: list[logging.LogRecord]
) -> None:
    # an OSError from the per-minute window's file (a full disk, a directory made read-only
    # for the server's user; here a directory in its place) was a plain-text 500 and a traceback
    limited = make_key(stack.config, stack.db, "rita", rpm=5)
    (stack.db.parent / f"{stack.db.name}.rpm" / limited[:14].encode().hex()).mkdir(parents=True)
    error = assert_error(stack.post(BODY, key=limited), 503, "per minute")
    assert error["code"] == "ledger_unavailable", error
    assert [r.getMessage() for r in server_errors] == []
    assert ledger_rows(stack.db, "requests") == []
    assert stack.post(BODY).status_code == 200  # a key without a limit never reads the file
