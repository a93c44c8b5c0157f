"""The OpenAI-compatible client's keep-alive transport, against the loopback server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.engine.providers import ChatRequest, complete
from cascadeflow_cli.engine.providers.openai_compat import OpenAICompatProvider
from cascadeflow_cli.engine.providers.transport import MAX_RESPONSE_BYTES, TransportBroken, TransportTooLarge
from cascadeflow_cli.errors import ProviderTimeoutError, ProviderUnavailableError
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer

REQUEST = ChatRequest([{"role": "user", "content": "Say hello."}], max_tokens=64)


def model(server: ReplayServer, **kw: Any) -> ModelConfig:
    return ModelConfig(name="m", model="openai/gpt-4o-mini", api_base=server.base_url, retry_delay=0.0, **kw)


def test_answers_and_reuses_its_connection(server: ReplayServer) -> None:
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer="Hello there.", prompt_tokens=12, completion_tokens=3)
    )
    provider = OpenAICompatProvider()
    m = model(server, max_retries=0)  # no retry may hide a connection left unusable
    results = [complete(provider, m, REQUEST) for _ in range(3)]
    assert [r.text for r in results] == ["Hello there."] * 3
    assert (results[0].usage.input_tokens, results[0].usage.output_tokens) == (12, 3)
    assert server.requests[-1]["max_tokens"] == 64 and server.requests[-1]["model"] == "gpt-4o-mini"
    assert len(provider._client._connections()) == 1


def test_timeout_and_unreachable(server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(hang=True))
    with pytest.raises(ProviderTimeoutError):
        complete(OpenAICompatProvider(), model(server, timeout=0.3, max_retries=0), REQUEST)
    gone = ModelConfig(name="m", model="openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(ProviderUnavailableError, match="cannot reach"):
        complete(OpenAICompatProvider(), gone, REQUEST)


def test_reconnects_after_the_server_drops_idle_connections() -> None:
    provider = OpenAICompatProvider()
    first = ReplayServer(default=ModelBehavior(answer="one.")).start()
    port = int(first.base_url.rsplit(":", 1)[1].split("/")[0])
    m = ModelConfig(name="m", model="openai/gpt-4o-mini", api_base=first.base_url, max_retries=0)
    assert complete(provider, m, REQUEST).text == "one."
    first.stop()  # closes the idle keep-alive connection
    second = ReplayServer(port=port, default=ModelBehavior(answer="two.")).start()
    try:
        assert complete(provider, m, REQUEST).text == "two."
    finally:
        second.stop()


def _aio_post(server: ReplayServer, payload: dict[str, Any]) -> Any:
    from cascadeflow_cli.engine.providers.aio_transport import AsyncKeepAliveClient

    async def main() -> Any:
        client = AsyncKeepAliveClient()
        try:
            # 120 s, not 10: only the cap may end the 8 MiB answer (at load ~7 the full suite's
            # run timed out first, 'TransportTimeout: timed out', as 5a0c3a7 saw for its twin)
            return await client.post(f"{server.base_url}/chat/completions", payload, {}, 120)
        finally:
            client.close()

    return asyncio.run(main())


@pytest.mark.parametrize("stream", [False, True], ids=["content-length", "chunked"])
def test_serves_event_loop_transport_refuses_a_response_past_the_cap(
    server: ReplayServer, stream: bool
) -> None:
    # serve's own transport (not KeepAliveClient): a hostile provider's endless answer must
    # not be buffered whole there either, whichever way the body is framed
    huge = "word " * (MAX_RESPONSE_BYTES // 5 + 1000)
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=huge, ignore_max_tokens=True))
    payload = {"model": "gpt-4o-mini", "messages": REQUEST.messages, "max_tokens": 16, "stream": stream}
    with pytest.raises(TransportTooLarge) as caught:
        _aio_post(server, payload)
    assert caught.value.received > MAX_RESPONSE_BYTES
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="Hello there."))
    assert _aio_post(server, {**payload, "stream": False}).json()["choices"][0]["message"]["content"] == (
        "Hello there."
    )


def test_a_reset_mid_answer_says_so_rather_than_cannot_reach(server: ReplayServer) -> None:
    # the server was reached and sent 40 bytes of its answer, then reset the connection
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="Hello there.", reset_after=40))
    with pytest.raises(ProviderUnavailableError) as caught:
        complete(OpenAICompatProvider(), model(server, max_retries=0), REQUEST)
    message = str(caught.value)
    assert f"m: the connection to {server.base_url} was reset after 40 bytes of the answer" == message
    payload = {"model": "gpt-4o-mini", "messages": REQUEST.messages, "max_tokens": 16}
    with pytest.raises(TransportBroken) as broken:  # serve's transport: the same kind of error
        _aio_post(server, payload)
    assert broken.value.reset


def test_serves_transport_reads_an_unframed_body_to_its_end_within_the_cap() -> None:
    # no Content-Length, no chunks: the body ends with the connection. It once ended
    # with the first segment that arrived (StreamReader.read(n) returns what has come).
    from cascadeflow_cli.engine.providers.aio_transport import AsyncKeepAliveClient

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        length = int(request.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        path = request.split(b" ")[1]
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        if path == b"/huge":
            piece = b"x" * (1 << 20)
            for _ in range(MAX_RESPONSE_BYTES // len(piece) + 1):
                writer.write(piece)
                await writer.drain()
        else:
            writer.write(b'{"first": "half", ')
            await writer.drain()
            await asyncio.sleep(0.05)  # the rest comes in a later segment
            writer.write(b'"second": "half"}')
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = AsyncKeepAliveClient()
        try:
            answer = await client.post(f"{base}/split", {}, {}, 5)
            assert answer.json() == {"first": "half", "second": "half"}
            with pytest.raises(TransportTooLarge):
                await client.post(f"{base}/huge", {}, {}, 5)
        finally:
            client.close()
            server.close()

    asyncio.run(main())


def test_a_server_that_closes_after_the_request_was_sent_is_not_unreachable(server: ReplayServer) -> None:
    """It said "cannot reach": the server had the request (and may bill it)."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(close_unanswered=True))
    with pytest.raises(ProviderUnavailableError) as caught:
        complete(OpenAICompatProvider(), model(server, max_retries=0), REQUEST)
    assert "took the request, then the connection ended without an answer" in str(caught.value)
    assert "cannot reach" not in str(caught.value) and caught.value.sent
