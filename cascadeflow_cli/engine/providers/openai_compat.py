"""The fast path: any OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, llama.cpp...)
over a small keep-alive transport, without importing litellm (which takes seconds)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.engine.pricing import Usage
from cascadeflow_cli.engine.providers.base import (
    ChatRequest,
    Choice,
    Completion,
    api_key,
    logprobs_from_openai,
    parse_retry_after,
    too_large,
    usage_from_openai,
)
from cascadeflow_cli.engine.providers.stream import StreamAssembler, StreamInterrupted, StreamSink
from cascadeflow_cli.engine.providers.transport import (
    KeepAliveClient,
    Response,
    TransportBroken,
    TransportError,
    TransportTimeout,
    TransportTooLarge,
)
from cascadeflow_cli.errors import (
    ProviderAuthError,
    ProviderBadRequestError,
    ProviderBrokenError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from cascadeflow_cli.text import provider_json

OPENAI_API_BASE = "https://api.openai.com/v1"
# litellm providers that speak OpenAI's wire format when given an api_base
OPENAI_COMPATIBLE_PROVIDERS = frozenset({"openai", "hosted_vllm", "lm_studio", "llamafile"})


def status_error(status: int, detail: str, model: str, retry_after: float | None) -> ProviderError:
    """Our exception for an HTTP error status (shared with the litellm path)."""
    message = f"{model}: provider returned HTTP {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        return ProviderAuthError(message, model=model, status=status)
    if status == 429:
        return ProviderRateLimitError(message, model=model, status=status, retry_after=retry_after)
    if status >= 500 or status == 408:
        return ProviderUnavailableError(message, model=model, status=status, retry_after=retry_after)
    return ProviderBadRequestError(message, model=model, status=status)


class OpenAICompatProvider:
    """One provider per process; its transport keeps a connection per host per thread.
    ``client``: another transport with ``post`` (`cascade serve`'s, on its event loop)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client or KeepAliveClient()

    def complete_once(self, model: ModelConfig, request: ChatRequest) -> Completion:
        base, body, headers = _call(model, request)
        started = time.perf_counter()
        cancel = request.cancel
        try:
            with _translated(model, base):
                if cancel is None:
                    response = self._client.post(f"{base}/chat/completions", body, headers, model.timeout)
                else:  # a caller that leaves closes the connection: the call ends here
                    response = self._client.post(f"{base}/chat/completions", body, headers, model.timeout,
                                                 cancel)
        except ProviderError:
            if cancel is not None and cancel.cancelled:  # our own abort broke it: not retried
                raise StreamInterrupted(cancel.reason) from None
            raise
        latency = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            raise _status_error(response, model.name)
        return parse_chat_completion(_json(response, model.name), model.name, latency)

    def stream_once(self, model: ModelConfig, request: ChatRequest, sink: StreamSink) -> Completion:
        """One streamed attempt: each content delta into ``sink`` as it arrives, usage
        asked for in the last chunk. A reader that leaves (``sink.cancel()``) closes
        the connection and gets StreamInterrupted with the partial answer."""
        base, body, headers = _call(model, request)
        body.update(stream=True, stream_options={"include_usage": True})
        assembler = StreamAssembler(sink)
        done = False
        plain: list[bytes] = []  # the body's lines while no SSE `data:` came (see _unstreamed)
        try:
            with _translated(model, base):
                # the sink hears of the connection at once: a reader leaving before the
                # answer's first byte closes it too
                response = self._client.open_stream(f"{base}/chat/completions", body, headers,
                                                    model.timeout, sink)
        except ProviderError:
            sink.opened(None)
            if sink.cancelled:  # closed by us before any answer: nothing was generated for it
                raise StreamInterrupted(sink.reason) from None
            raise
        if response.status_code >= 400:
            sink.opened(None)  # its connection may be reused: no cancel may close it now
            with _translated(model, base):
                raise _status_error(response.read(), model.name)
        sink.opened(response.abort)
        try:
            with _translated(model, base):
                for line in response.lines():
                    data = _sse_data(line)
                    if data is None:
                        if plain is not None:
                            plain.append(line)
                        continue
                    plain = None
                    if data == b"[DONE]":
                        done = True
                        continue  # read on to the body's end, so the connection is reused
                    assembler.add(_chunk(data, model.name))
                if plain is not None and b"".join(plain).lstrip().startswith(b"{"):
                    return _unstreamed(b"".join(plain), model.name, sink, assembler.started)
                if not done and not assembler.finish_reason:
                    # http.client ends a chunked body cut at a chunk boundary quietly: an
                    # answer without its end is a broken stream, not a complete answer
                    raise ProviderUnavailableError(
                        f"{model.name}: the stream ended before the answer did", model=model.name
                    )
        except StreamInterrupted as exc:
            response.abort()
            raise assembler.interrupted(exc.reason) from None
        except ProviderError as exc:
            exc.sent = True  # the stream had begun (200): the provider has the request
            if sink.cancelled:  # our own abort broke the read: the reader left
                raise assembler.interrupted(sink.reason) from None
            if assembler.finish_reason and isinstance(exc, ProviderUnavailableError | ProviderTimeoutError):
                # the connection broke after the provider said the answer was done (only the
                # `[DONE]` marker lost): the answer is complete and billed, so it is one
                return assembler.completion()
            if assembler.parts:  # it stalled or broke mid-answer: what it generated is billed
                assembler.finish_reason = assembler.finish_reason or "error"
                exc.partial = assembler.completion()
            raise
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while reading: keep what was generated
            response.abort()
            raise assembler.interrupted("interrupted by the user") from None
        finally:
            sink.opened(None)
            response.close()
        if sink.cancelled:
            raise assembler.interrupted(sink.reason)
        return assembler.answered(model.name)


def _call(model: ModelConfig, request: ChatRequest) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The base URL, body and headers of a chat-completions call."""
    base = (model.api_base or OPENAI_API_BASE).rstrip("/")
    key = api_key(model, None if model.api_base else "OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    # OpenAI's own API wants max_completion_tokens (required by reasoning models);
    # compatible servers still expect max_tokens.
    token_param = "max_tokens" if model.api_base else "max_completion_tokens"
    body: dict[str, Any] = {
        "model": model.wire_model,
        "messages": request.messages,
        token_param: request.max_tokens,
        **signal_params(request),
    }
    return base, body, headers


@contextlib.contextmanager
def _translated(model: ModelConfig, base: str) -> Iterator[None]:
    """Transport failures as our provider errors."""
    try:
        yield
    except TransportTooLarge as exc:
        # priced from its size (about four bytes a token; the prompt side estimated by the
        # cascade), marked estimated
        raise too_large(model.name, Completion("", Usage(0, math.ceil(exc.received / 4)), "length")) from None
    except TransportTimeout as exc:
        raise ProviderTimeoutError(f"{model.name}: no answer within {model.timeout:g}s",
                                   model=model.name, sent=exc.sent) from None
    except TransportBroken as exc:
        raise ProviderBrokenError(f"{model.name}: {broken_message(base, exc)}", model=model.name,
                                  sent=True) from None
    except TransportError as exc:
        # after the request was sent the server was reached: "cannot reach" misled (hostile-13)
        said = unanswered_message(base, exc) if exc.sent else f"cannot reach {base}: {exc}"
        raise ProviderUnavailableError(f"{model.name}: {said}", model=model.name, sent=exc.sent) from None


def unanswered_message(base: str, exc: TransportError) -> str:
    """What happened when the connection ended after the request was sent, before any
    answer came (RemoteDisconnected, a reset, a status line that was not one)."""
    return f"{base} took the request, then the connection ended without an answer ({exc})"


def broken_message(base: str, exc: TransportBroken) -> str:
    """What happened when the connection broke mid-answer (shared with serve's transport)."""
    n = exc.received
    size = "part of the answer" if n is None else f"{n} byte{'s' if n != 1 else ''} of the answer"
    if exc.reset:
        return f"the connection to {base} was reset after {size}"
    return f"the connection to {base} broke after {size} ({exc})"


def _status_error(response: Response, model: str) -> ProviderError:
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    return status_error(response.status_code, _error_detail(response), model, retry_after)


def _unstreamed(body: bytes, model: str, sink: StreamSink, started: float) -> Completion:
    """The answer of a provider that ignored ``stream: true`` and sent one JSON body (some
    OpenAI-compatible servers and proxies do): it is billed, so it is an answer, priced
    from its usage; it was "the stream ended before the answer did", recorded at $0
    (hostile-10). An error body or non-JSON is the same error as without streaming."""
    try:
        data = provider_json(body)
    except ValueError:
        raise ProviderResponseError(f"{model}: provider answered with something that is not JSON",
                                    model=model, sent=True) from None
    completion = parse_chat_completion(data, model, (time.perf_counter() - started) * 1000)
    if completion.text:
        sink.delta(completion.text)
    return completion


def _sse_data(line: bytes) -> bytes | None:
    """The payload of an SSE ``data:`` line; None for blank lines, comments, other fields."""
    line = line.strip()
    if not line.startswith(b"data:"):
        return None
    return line[5:].strip()


def _chunk(data: bytes, model: str) -> Any:
    try:
        chunk = provider_json(data)
    except ValueError:
        raise ProviderResponseError(
            f"{model}: provider streamed something that is not JSON", model=model
        ) from None
    if isinstance(chunk, dict) and chunk.get("error"):
        error = chunk["error"]
        detail = error.get("message") if isinstance(error, dict) else error
        raise ProviderResponseError(f"{model}: provider stream failed: {str(detail)[:200]}", model=model)
    if not isinstance(chunk, dict):
        raise ProviderResponseError(f"{model}: provider streamed a malformed chunk", model=model)
    return chunk


def _json(response: Response, model: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProviderResponseError(
            f"{model}: provider answered with something that is not JSON", model=model, sent=True
        ) from None


def _error_detail(response: Response) -> str:
    try:
        data = response.json()
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        return str(message)[:200] if message else ""
    except ValueError:
        return response.text[:200].strip()


def signal_params(request: ChatRequest) -> dict[str, Any]:
    """The request's optional fields, only when asked for: the live quality signals
    (issue 9) and the client's stop sequences."""
    params: dict[str, Any] = {}
    if request.stop:
        params["stop"] = list(request.stop)
    if request.logprobs:
        params.update(logprobs=True, top_logprobs=0)
    if request.n > 1:
        params["n"] = request.n
    return params


def parse_chat_completion(data: Any, model: str, latency_ms: float) -> Completion:
    """A chat.completion body to a Completion; anything else is a ProviderResponseError,
    ``sent`` (the provider answered: it had the request, and may bill it). Every choice is
    kept (``n`` samples); a malformed extra choice is dropped, not fatal."""
    try:
        raw_choices = data["choices"]
        first = _choice(raw_choices[0])
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ProviderResponseError(
            f"{model}: provider answered with a malformed chat completion", model=model, sent=True
        ) from None
    if not first.text and not first.finish_reason:  # as a stream with no answer (stream.answered)
        raise ProviderResponseError(
            f"{model}: provider answered with an empty chat completion (no text and no finish reason)",
            model=model, sent=True,
        )
    choices = [first]
    for raw in raw_choices[1:]:
        try:
            choices.append(_choice(raw))
        except (KeyError, TypeError, AttributeError):
            continue
    usage = usage_from_openai(data.get("usage"))
    return Completion(
        first.text,
        usage,
        first.finish_reason,
        latency_ms,
        response_id=_text(data.get("id")),
        response_model=_text(data.get("model")),
        choices=tuple(choices),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _choice(raw: Any) -> Choice:
    content = raw["message"].get("content") or ""
    if not isinstance(content, str):
        raise TypeError("content is not text")
    # a finish reason that is not text is none (7 or ["stop"] crashed the quality check
    # after the call was paid: "unexpected AttributeError", hostile-16)
    return Choice(content, _text(raw.get("finish_reason")), logprobs_from_openai(raw.get("logprobs")))
