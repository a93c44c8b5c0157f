"""Every other provider, through litellm. Imported only when such a model is called:
`import litellm` costs seconds. Its cost map is pinned to the bundled copy first, so
nothing is fetched from the network.

The response-size cap (transport.MAX_RESPONSE_BYTES) on this path: a stream is counted
here, chunk by chunk, and stopped past the cap as our own transport stops it. A whole
answer is read by litellm's httpx client before we see a byte, and is not capped: the
only hooks (``litellm.sync_transport``, ``litellm.client_session``) replace the client's
transport outright, which drops what litellm sets up on it (HTTP(S)_PROXY mounts, its
SSL_CERTIFICATE / ssl_verify context, HTTP/2, force_ipv4), so a capping wrapper would
break proxied and custom-TLS users to guard a path that only talks to the providers
litellm knows; any OpenAI-compatible ``api_base`` (the place a hostile or broken server
can be configured) takes the capped fast path unless ``client = "litellm"`` is forced.

A caller that may leave (``request.cancel``, `cascade serve`): litellm's blocking call
cannot be stopped from another thread, so the whole answer is asked with
``litellm.acompletion`` on one event loop kept for that (a thread of its own), and a
cancel cancels its task: httpx closes the connection mid-answer, on every provider
litellm knows (no client of ours replaces its own, nor what it sets up on it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from types import ModuleType
from typing import Any

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.engine.providers.base import (
    ChatRequest,
    Completion,
    api_key,
    parse_retry_after,
    too_large,
)
from cascadeflow_cli.engine.providers.cancel import Cancellation
from cascadeflow_cli.engine.providers.openai_compat import parse_chat_completion, signal_params, status_error
from cascadeflow_cli.engine.providers.stream import StreamAssembler, StreamInterrupted, StreamSink
from cascadeflow_cli.engine.providers.transport import MAX_RESPONSE_BYTES
from cascadeflow_cli.errors import (
    MissingApiKeyError,
    ProviderAuthError,
    ProviderBrokenError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)

_import_lock = threading.Lock()
# what one streamed chunk takes on the wire besides its text: its SSE framing and JSON
# (id, object, created, model, choices, index, finish_reason) is about 140 bytes from
# OpenAI and the replay server; counted so a stream of empty chunks is bounded too
_CHUNK_BYTES = 100
_loop: asyncio.AbstractEventLoop | None = None  # litellm's calls a caller may leave run here


def import_litellm() -> ModuleType:
    """litellm, set up offline and quiet."""
    with _import_lock:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        return litellm


class LiteLLMProvider:
    def complete_once(self, model: ModelConfig, request: ChatRequest) -> Completion:
        litellm = import_litellm()
        kwargs = _kwargs(litellm, model, request)
        started = time.perf_counter()
        cancel = request.cancel
        try:
            if cancel is None:
                response = litellm.completion(**kwargs)
            else:
                response = _cancellable(litellm.acompletion(**kwargs), cancel)
        except concurrent.futures.CancelledError:
            raise StreamInterrupted(cancel.reason if cancel else "cancelled") from None
        except Exception as exc:
            if cancel is not None and cancel.cancelled:  # our own abort broke it: not retried
                raise StreamInterrupted(cancel.reason) from None
            raise _translate(exc, litellm, model.name) from None
        latency = (time.perf_counter() - started) * 1000
        data = response.model_dump() if hasattr(response, "model_dump") else response
        return parse_chat_completion(data, model.name, latency)

    def stream_once(self, model: ModelConfig, request: ChatRequest, sink: StreamSink) -> Completion:
        """One streamed attempt through litellm. Its stream cannot be aborted from
        another thread: a reader that left is noticed at the next chunk."""
        litellm = import_litellm()
        kwargs = _kwargs(litellm, model, request)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        assembler = StreamAssembler(sink)
        stream = None
        try:
            stream = litellm.completion(**kwargs)
            received = 0  # from here on the stream has begun (200): the provider has the request
            for chunk in stream:
                parts = len(assembler.parts)
                assembler.add(chunk)
                received += _CHUNK_BYTES + sum(len(p.encode()) for p in assembler.parts[parts:])
                if received > MAX_RESPONSE_BYTES:
                    assembler.finish_reason = assembler.finish_reason or "length"
                    raise too_large(model.name, assembler.completion(), MAX_RESPONSE_BYTES)
        except StreamInterrupted as exc:
            raise assembler.interrupted(exc.reason) from None
        except KeyboardInterrupt:
            raise assembler.interrupted("interrupted by the user") from None
        except ProviderError:
            raise
        except Exception as exc:
            if stream is None:
                raise _translate(exc, litellm, model.name) from None
            raise _broke_mid_stream(exc, litellm, model.name, assembler) from None
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        if sink.cancelled:
            raise assembler.interrupted(sink.reason)
        return assembler.answered(model.name)


def _call_loop() -> asyncio.AbstractEventLoop:
    """The one loop litellm's cancellable calls run on, started at the first: one loop
    for all, as litellm caches its async clients (bound to the loop they were made on)."""
    global _loop
    with _import_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="litellm-calls", daemon=True).start()
            _loop = loop
        return _loop


def _cancellable(call: Any, cancel: Cancellation) -> Any:
    """``call`` (a coroutine) awaited on the call loop; ``cancel.cancel()`` cancels its
    task (the connection is closed) and this raises concurrent.futures.CancelledError."""
    future = asyncio.run_coroutine_threadsafe(call, _call_loop())
    cancel.opened(future.cancel)  # already gone: cancelled at once
    try:
        return future.result()
    finally:
        cancel.opened(None)


def _broke_mid_stream(exc: Exception, litellm: ModuleType, model: str,
                      assembler: StreamAssembler) -> ProviderError:
    """The error of a stream that failed after it began, as openai_compat's stream_once
    has it: sent (billed), with what was generated as its partial. A stream closed mid-answer
    was litellm's MidStreamFallbackError, said as "provider returned HTTP 500" and recorded
    at $0 with the answer's first words already printed (hostile-23)."""
    mid_stream = getattr(litellm.exceptions, "MidStreamFallbackError", None)
    if mid_stream is not None and isinstance(exc, mid_stream):
        cause = exc.original_exception or exc
        detail = str(getattr(cause, "message", "") or cause).splitlines()[0][:200] if str(cause) else ""
        error: ProviderError = ProviderBrokenError(
            f"{model}: the stream broke mid-answer" + (f": {detail}" if detail else ""), model=model)
    else:
        error = _translate(exc, litellm, model)
    error.sent = True
    if assembler.parts or assembler.finish_reason:
        assembler.finish_reason = assembler.finish_reason or "error"
        error.partial = assembler.completion()
    return error


def _kwargs(litellm: ModuleType, model: ModelConfig, request: ChatRequest) -> dict[str, Any]:
    """litellm.completion's arguments for one call (raises MissingApiKeyError)."""
    kwargs: dict[str, Any] = {
        "model": model.model,
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        "timeout": model.timeout,
        "num_retries": 0,
    }
    extras = signal_params(request)
    if extras:  # a provider litellm knows cannot take them gets the call without them
        kwargs.update(extras, drop_params=True)
    if model.api_base:
        kwargs["api_base"] = model.api_base
    key = api_key(model)
    if key:
        kwargs["api_key"] = key
    elif model.api_base:
        # A local server needs no key, but litellm's OpenAI client refuses to start
        # without one: give it a placeholder that is not a secret.
        kwargs["api_key"] = "no-key"
    else:
        missing = litellm.validate_environment(model=model.model).get("missing_keys") or []
        if missing:
            raise MissingApiKeyError(model.name, str(missing[0]))
    return kwargs


# httpx's errors (litellm's client) by phase: before the request left (nothing to bill),
# and after it did (the provider may have it); named, so httpx is not imported for this
_UNSENT = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout", "WriteError", "WriteTimeout",
                     "ConnectionRefusedError", "gaierror", "UnsupportedProtocol"})
_SENT = frozenset({"ReadError", "ReadTimeout", "RemoteProtocolError", "ConnectionResetError"})


def _phase(exc: BaseException) -> bool | None:
    """Whether the request had left when ``exc`` happened (its causes' names tell), None
    when they do not say."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 10:
        name = type(cause).__name__
        if name in _UNSENT:
            return False
        if name in _SENT:
            return True
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return None


def _answered(exc: BaseException) -> bool:
    """Whether ``exc`` (or a cause) was raised while litellm turned a received 200 body
    into its response object: the provider answered (and billed), with a body that is no
    chat completion (an error object, a usage of 10.5 tokens). litellm files those under
    a status it makes up (422, 500), which read as an error status no provider bills."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 10:
        tb = cause.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "convert_to_model_response_object":
                return True
            tb = tb.tb_next
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return False


def _translate(exc: Exception, litellm: ModuleType, model: str) -> ProviderError:
    errors = litellm.exceptions
    if _answered(exc):  # as openai_compat.parse_chat_completion: sent, charged an estimate
        return ProviderResponseError(f"{model}: provider answered with a malformed chat completion",
                                     model=model, sent=True)
    message = str(getattr(exc, "message", "") or exc).splitlines()[0][:200] if str(exc) else ""
    if isinstance(exc, errors.Timeout):  # a read timeout, unless the cause says connect
        return ProviderTimeoutError(f"{model}: no answer in time", model=model,
                                    sent=_phase(exc) is not False)
    if isinstance(exc, errors.APIConnectionError):  # broken mid-answer only when the cause says so
        sent = _phase(exc) is True
        said = ("the provider took the request, then the connection ended without an answer" if sent
                else "cannot reach the provider")
        return ProviderUnavailableError(f"{model}: {said}: {message}", model=model, sent=sent)
    if isinstance(exc, errors.AuthenticationError | errors.PermissionDeniedError):
        return ProviderAuthError(
            f"{model}: provider rejected the credentials",
            model=model,
            status=getattr(exc, "status_code", None),
        )
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 400:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        return status_error(status, message, model, parse_retry_after(headers.get("retry-after")))
    return ProviderResponseError(
        f"{model}: provider call failed: {message or type(exc).__name__}", model=model
    )
