"""Both client paths against the same loopback server: our OpenAI-compatible client and
litellm (its real HTTP path, not mocked). Same errors, same usage, same retries."""

from __future__ import annotations

import pytest

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.engine.providers import ChatRequest, complete, provider_for, uses_fast_path
from cascadeflow_cli.errors import (
    MissingApiKeyError,
    ProviderAuthError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer

REQUEST = ChatRequest([{"role": "user", "content": "Say hello."}], max_tokens=64)


def model(server: ReplayServer, client: str, **kw: object) -> ModelConfig:
    return ModelConfig(
        name="m",
        model="openai/gpt-4o-mini",
        api_base=server.base_url,
        client=client,
        retry_delay=0.0,
        timeout=kw.pop("timeout", 5.0),
        **kw,
    )  # type: ignore[arg-type]


CLIENTS = ["openai", "litellm"]


@pytest.mark.parametrize("client", CLIENTS)
def test_answer_and_usage(server: ReplayServer, client: str) -> None:
    server.set_behavior(
        "gpt-4o-mini",
        ModelBehavior(
            answer="Hello there.", prompt_tokens=12, completion_tokens=3, cached_tokens=4, reasoning_tokens=1
        ),
    )
    m = model(server, client)
    result = complete(provider_for(m), m, REQUEST)
    assert result.text == "Hello there."
    assert result.finish_reason == "stop"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 3)
    assert (result.usage.cached_tokens, result.usage.reasoning_tokens) == (4, 1)
    assert server.requests[-1]["model"] == "gpt-4o-mini"


@pytest.mark.parametrize("client", CLIENTS)
def test_retries_5xx_then_succeeds(server: ReplayServer, client: str) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="ok.", status=502, fail_times=2))
    m = model(server, client, max_retries=2)
    result = complete(provider_for(m), m, REQUEST, sleep=lambda s: None)
    assert result.text == "ok." and result.attempts == 3


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("behavior", "error", "calls"),
    [
        (ModelBehavior(status=500), ProviderUnavailableError, 3),
        (ModelBehavior(status=429, retry_after=0.0), ProviderRateLimitError, 3),
        (ModelBehavior(status=401), ProviderAuthError, 1),
        (ModelBehavior(garbage=True), ProviderResponseError, 3),
    ],
)
def test_errors_map_to_our_types(
    server: ReplayServer, client: str, behavior: ModelBehavior, error: type[Exception], calls: int
) -> None:
    server.set_behavior("gpt-4o-mini", behavior)
    m = model(server, client, max_retries=2)
    if behavior.garbage and client == "litellm":
        error = ProviderUnavailableError  # litellm itself files a non-JSON body under HTTP 500
    with pytest.raises(error) as info:
        complete(provider_for(m), m, REQUEST, sleep=lambda s: None)
    assert info.value.exit_code == 2
    assert info.value.attempts == calls  # type: ignore[attr-defined]
    assert server.request_count("gpt-4o-mini") == calls


@pytest.mark.parametrize("client", CLIENTS)
def test_timeout(server: ReplayServer, client: str) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(hang=True))
    m = model(server, client, timeout=0.3, max_retries=0)
    with pytest.raises(ProviderTimeoutError):
        complete(provider_for(m), m, REQUEST)


def test_retry_after_is_honoured(server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="ok.", status=429, fail_times=1, retry_after=7))
    slept: list[float] = []
    m = model(server, "openai")
    complete(provider_for(m), m, REQUEST, sleep=slept.append)
    assert slept == [7.0]


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_key_names_the_variable(server: ReplayServer, client: str) -> None:
    m = model(server, client, api_key_env="CASCADE_TEST_KEY_THAT_IS_UNSET")
    with pytest.raises(MissingApiKeyError, match="CASCADE_TEST_KEY_THAT_IS_UNSET"):
        complete(provider_for(m), m, REQUEST)
    assert server.request_count() == 0


def test_key_is_sent_as_bearer_and_never_in_errors(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    server.set_behavior("gpt-4o-mini", ModelBehavior(status=401))
    m = model(server, "openai", api_key_env="MY_KEY")
    with pytest.raises(ProviderAuthError) as info:
        complete(provider_for(m), m, REQUEST)
    assert "sk-secret-123" not in str(info.value)


def test_real_openai_without_a_key_says_which_variable() -> None:
    m = ModelConfig(name="mini", model="openai/gpt-4o-mini")
    with pytest.raises(MissingApiKeyError, match="OPENAI_API_KEY"):
        complete(provider_for(m), m, REQUEST)


def test_path_choice() -> None:
    assert uses_fast_path(ModelConfig(name="a", model="openai/gpt-4o"))
    assert uses_fast_path(ModelConfig(name="a", model="gpt-4o-mini"))  # openai per the price map
    assert uses_fast_path(ModelConfig(name="a", model="hosted_vllm/llama", api_base="http://x/v1"))
    assert not uses_fast_path(ModelConfig(name="a", model="anthropic/claude-3-5-sonnet-latest"))
    assert not uses_fast_path(ModelConfig(name="a", model="openai/gpt-4o", client="litellm"))
    assert uses_fast_path(ModelConfig(name="a", model="mistral/x", api_base="http://x", client="openai"))


def test_each_retry_is_told_to_the_callback_before_its_wait(server: ReplayServer) -> None:
    """Issue 11: retries were silent; the core tells a callback, the CLI prints it."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="ok.", status=429, fail_times=2, retry_after=0.5))
    events: list[str] = []
    m = model(server, "openai", max_retries=3)
    complete(provider_for(m), m, REQUEST, sleep=lambda s: events.append(f"slept {s:g}"),
             on_retry=lambda n: events.append(n.describe()))
    assert events == ["m: HTTP 429, retrying in 0.5 s (2 of 4)", "slept 0.5",
                      "m: HTTP 429, retrying in 0.5 s (3 of 4)", "slept 0.5"]


def test_a_retry_after_past_the_deadline_is_not_waited(server: ReplayServer) -> None:
    """Issue 11: `Retry-After: 100` gave 80 s of silence, then failure."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(status=429, retry_after=100))
    slept: list[float] = []
    m = model(server, "openai", timeout=2, max_retries=3)  # deadline: 4 x 2 s + 3 x 20 s = 68 s
    with pytest.raises(ProviderRateLimitError, match="deadline") as info:
        complete(provider_for(m), m, REQUEST, sleep=slept.append, on_retry=lambda n: slept.append(-1))
    assert slept == [] and server.request_count("gpt-4o-mini") == 1
    assert info.value.attempts == 1  # type: ignore[attr-defined]


def test_a_litellm_stream_past_the_response_cap_is_stopped_and_kept_as_partial(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # litellm's own client has no size cap: its stream is counted chunk by chunk by us. The
    # cap is lowered so the test streams kilobytes, not 8 MiB through litellm's parser.
    from cascadeflow_cli.engine.providers import litellm_provider
    from cascadeflow_cli.engine.providers.stream import StreamSink, stream_complete

    monkeypatch.setattr(litellm_provider, "MAX_RESPONSE_BYTES", 4096)
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="word " * 4000, ignore_max_tokens=True))
    m = model(server, "litellm", max_retries=2)
    seen: list[str] = []
    refused = "response passed 4,096 bytes, the most cascade reads; refused"
    with pytest.raises(ProviderResponseError, match=refused) as caught:
        stream_complete(provider_for(m), m, REQUEST, StreamSink(seen.append), sleep=lambda s: None)
    assert server.request_count("gpt-4o-mini") == 1  # not retried: it would answer as much again
    partial = caught.value.partial  # type: ignore[attr-defined]
    assert partial.text == "".join(seen) and 0 < len(partial.text.encode()) <= 4096
    assert partial.finish_reason == "length"


# --- which failed tries may be billed: sent, and no answer came ("nothing paid for is lost")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_timed_out_try_before_a_retry_that_answered_is_counted_as_unanswered(
    server: ReplayServer, client: str
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="ok.", latency_s=1.5, fail_times=1))
    m = model(server, client, max_retries=1, timeout=0.5)
    result = complete(provider_for(m), m, REQUEST, sleep=lambda s: None)
    assert result.text == "ok." and result.attempts == 2
    assert result.unanswered == 1  # the provider had the first request, and may bill it


@pytest.mark.parametrize("client", CLIENTS)
def test_a_call_that_timed_out_on_every_try_counts_each_try(server: ReplayServer, client: str) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="ok.", latency_s=1.5))
    m = model(server, client, max_retries=1, timeout=0.5)
    with pytest.raises(ProviderTimeoutError) as caught:
        complete(provider_for(m), m, REQUEST, sleep=lambda s: None)
    assert caught.value.sent and caught.value.unanswered == 2


@pytest.mark.parametrize("client", CLIENTS)
def test_error_statuses_and_refused_connections_are_not_unanswered(server: ReplayServer, client: str) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="ok.", status=502, fail_times=1))
    m = model(server, client, max_retries=1)
    assert complete(provider_for(m), m, REQUEST, sleep=lambda s: None).unanswered == 0  # a 5xx is not billed
    import socket

    with socket.socket() as probe:  # a port nobody listens on: the request never leaves
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = ModelConfig(name="m", model="openai/gpt-4o-mini", api_base=f"http://127.0.0.1:{port}/v1",
                         client=client, retry_delay=0.0, timeout=5.0, max_retries=0)  # type: ignore[arg-type]
    with pytest.raises(ProviderUnavailableError) as caught:
        complete(provider_for(closed), closed, REQUEST)
    assert not caught.value.sent and caught.value.unanswered == 0


def test_a_connection_reset_mid_answer_is_unanswered(server: ReplayServer) -> None:
    from cascadeflow_cli.errors import ProviderBrokenError

    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="ok, " * 50, reset_after=40))
    m = model(server, "openai", max_retries=0)
    with pytest.raises(ProviderBrokenError) as caught:
        complete(provider_for(m), m, REQUEST)
    assert caught.value.unanswered == 1


def test_the_event_loop_transport_tells_a_timeout_after_sending_from_a_refused_connection(
    server: ReplayServer,
) -> None:
    import asyncio
    import socket

    from cascadeflow_cli.engine.providers.aio_transport import AsyncKeepAliveClient
    from cascadeflow_cli.engine.providers.transport import TransportError, TransportTimeout

    server.set_behavior("gpt-4o-mini", ModelBehavior(answer="ok.", latency_s=1.5))
    body = {"model": "gpt-4o-mini", "messages": REQUEST.messages, "max_tokens": 8}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def both() -> tuple[BaseException, BaseException]:
        client = AsyncKeepAliveClient()
        try:
            errors = []
            for url in (f"{server.base_url}/chat/completions", f"http://127.0.0.1:{port}/v1/chat/completions"):
                try:
                    await client.post(url, body, {}, 0.5)
                except (TransportTimeout, TransportError) as exc:
                    errors.append(exc)
            return errors[0], errors[1]
        finally:
            client.close()

    timed_out, refused = asyncio.run(both())
    assert isinstance(timed_out, TransportTimeout) and timed_out.sent
    assert isinstance(refused, TransportError) and not refused.sent
