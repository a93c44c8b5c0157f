"""One small provider interface, and the retry loop every provider shares.

Providers make exactly one attempt and translate their failures into our exception
tree; retries with backoff live here, once, so both client paths behave the same.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.engine.pricing import Usage
from cascadeflow_cli.engine.providers.cancel import Cancellation
from cascadeflow_cli.engine.providers.transport import MAX_RESPONSE_BYTES
from cascadeflow_cli.errors import (
    InvalidApiKeyError,
    MissingApiKeyError,
    ProviderError,
    ProviderTooLargeError,
)
from cascadeflow_cli.money import MAX_COUNT

MAX_BACKOFF_S = 20.0


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    max_tokens: int
    logprobs: bool = False  # ask for token log-probabilities (`logprobs: true, top_logprobs: 0`)
    n: int = 1  # ask for this many samples in one call (`n`); a provider may ignore either
    stop: tuple[str, ...] = ()  # the client's stop sequences (`cascade serve`), passed on
    # the caller may leave mid-call (providers/cancel.py): a provider that can closes its
    # connection then and raises StreamInterrupted; one that cannot answers as usual
    cancel: Cancellation | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Choice:
    """One sampled answer of a call; ``logprobs`` None when the provider sent none."""

    text: str
    finish_reason: str | None
    logprobs: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    finish_reason: str | None
    latency_ms: float = 0.0
    attempts: int = 1
    response_id: str | None = None  # the provider's id for the completion (telemetry)
    response_model: str | None = None  # the model that answered, as the provider names it
    # every choice the provider returned (the first is ``text``); empty when built by hand
    choices: tuple[Choice, ...] = ()
    # earlier tries that were sent and got no answer (ProviderError.sent): billed, unseen
    unanswered: int = 0

    @property
    def logprobs(self) -> tuple[float, ...] | None:
        return self.choices[0].logprobs if self.choices else None


class Provider(Protocol):
    def complete_once(self, model: ModelConfig, request: ChatRequest) -> Completion:
        """One attempt. Raises a ProviderError subclass (or MissingApiKeyError)."""
        ...


def api_key(model: ModelConfig, default_env: str | None = None) -> str | None:
    """The key for ``model`` from its environment variable; never logged or stored.
    A configured (or required default) variable that is unset is an error naming it."""
    env = model.api_key_env or default_env
    if env is None:
        return None
    value = os.environ.get(env, "").strip()
    if not value:
        raise MissingApiKeyError(model.name, env)
    problem = key_problem(value)
    if problem:
        raise InvalidApiKeyError(model.name, env, problem)
    return value


def key_problem(value: str) -> str | None:
    """What makes ``value`` unusable as a key in an HTTP header, or None. Says what kind
    of character is wrong, never which: the value is a secret."""
    for char in value:
        if char in "\r\n":
            return "a line break"
        if char.isspace():
            return "a space"
        if not char.isascii():
            return "a non-ASCII character"
        if not char.isprintable():
            return "a control character"
    return None


@dataclass(frozen=True)
class RetryNotice:
    """One retry about to happen, for the caller to show ("big: HTTP 429, retrying in
    20 s (2 of 4)"): the core never prints, it tells a callback."""

    model: str
    reason: str
    delay_s: float
    attempt: int  # the attempt about to be made, 2 for the first retry
    attempts: int  # the most there will be

    def describe(self) -> str:
        wait = f"{round(self.delay_s, 1):g} s"
        return f"{self.model}: {self.reason}, retrying in {wait} ({self.attempt} of {self.attempts})"


def too_large(model: str, partial: Completion, limit: int = MAX_RESPONSE_BYTES) -> ProviderError:
    """A response past ``limit`` bytes (the cap the client enforced), on any client:
    ``partial`` (what had come, or an estimate from its size) is priced and recorded by
    the cascade, since it was generated."""
    size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit:,} bytes"
    error = ProviderTooLargeError(
        f"{model}: the provider's response passed {size}, the most cascade reads; refused", model=model
    )
    error.partial = partial
    return error


def model_deadline_s(model: ModelConfig) -> float:
    """The longest one model's call may take, retries and waits included (also what the
    budget reservation's lifetime is computed from)."""
    return model.timeout * (model.max_retries + 1) + MAX_BACKOFF_S * model.max_retries


def _reason(exc: ProviderError) -> str:
    from cascadeflow_cli.errors import ProviderBrokenError, ProviderTimeoutError

    if exc.status is not None:
        return f"HTTP {exc.status}"
    if isinstance(exc, ProviderTimeoutError):
        return "no answer in time"
    if isinstance(exc, ProviderBrokenError):
        return "the connection broke mid-answer"
    if "took the request" in str(exc):  # openai_compat.unanswered_message, litellm's alike
        return "the connection ended without an answer"
    return "no usable answer" if exc.retryable and "reach" not in str(exc) else "cannot reach the server"


def complete(
    provider: Provider,
    model: ModelConfig,
    request: ChatRequest,
    *,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
    on_retry: Callable[[RetryNotice], None] | None = None,
) -> Completion:
    """Call with retries on rate limits, 5xx, timeouts and garbage: exponential backoff
    with jitter, honouring Retry-After, each retry told to ``on_retry``. A wait that
    would end past the call's deadline (``model_deadline_s``) is not waited: the error is
    raised at once. The error that ends the loop carries ``attempts`` and
    ``latency_ms`` so the failed call can be recorded, and the answer or the error
    ``unanswered``: the tries that were sent and got no answer (a timeout before a retry
    that answered: the provider may bill both), each charged an estimate by the cascade."""
    started = time.perf_counter()
    deadline = started + model_deadline_s(model)
    attempts = unanswered = 0
    while True:
        attempts += 1
        try:
            result = provider.complete_once(model, request)
        except ProviderError as exc:
            if exc.sent and exc.partial is None:  # a partial answer is priced from itself
                unanswered += 1
            exc.unanswered = unanswered
            if not exc.retryable or attempts > model.max_retries:
                exc.attempts = attempts  # type: ignore[attr-defined]
                exc.latency_ms = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
                if not exc.model:
                    exc.model = model.name
                raise
            delay = min(model.retry_delay * (2 ** (attempts - 1)) * (0.5 + jitter()), MAX_BACKOFF_S)
            if exc.retry_after is not None:
                delay = max(delay, exc.retry_after)  # waiting less would only be refused again
            if time.perf_counter() + delay > deadline:
                exc.args = (f"{exc}; not retried: waiting {delay:.0f} s would pass this call's deadline",)
                exc.attempts = attempts  # type: ignore[attr-defined]
                exc.latency_ms = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
                exc.model = exc.model or model.name
                raise exc from None
            if on_retry is not None:
                # a notice only: a stderr that cannot be written (2>/dev/full) ended the
                # request mid-cascade, its draft paid and its answer never asked for
                notice = RetryNotice(model.name, _reason(exc), delay, attempts + 1, model.max_retries + 1)
                with contextlib.suppress(OSError):
                    on_retry(notice)
            sleep(delay)
            continue
        return replace(result, latency_ms=(time.perf_counter() - started) * 1000, attempts=attempts,
                       unanswered=unanswered)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def usage_from_openai(raw: Any) -> Usage:
    """Usage from an OpenAI-shaped ``usage`` object (dict or attribute access)."""

    def get(obj: Any, key: str) -> Any:
        if obj is None:
            return None
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

    def count(value: Any) -> int:
        # a count past MAX_COUNT is no count (a provider claiming 1e30 tokens once made a
        # record SQLite could not store, which then failed every later command on replay):
        # 0, like a missing or negative one, so the call is priced from its text instead
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # some OpenAI-compatible servers send 30.0
        if not isinstance(value, int) or isinstance(value, bool):
            return 0
        return value if 0 < value <= MAX_COUNT else 0

    return Usage(
        input_tokens=count(get(raw, "prompt_tokens")),
        output_tokens=count(get(raw, "completion_tokens")),
        cached_tokens=count(get(get(raw, "prompt_tokens_details"), "cached_tokens")),
        reasoning_tokens=count(get(get(raw, "completion_tokens_details"), "reasoning_tokens")),
    )


def logprobs_from_openai(raw: Any) -> tuple[float, ...] | None:
    """Token log-probabilities of one choice (``choice.logprobs.content[*].logprob``);
    None when absent or malformed: a provider that ignores the request is no error."""
    content = raw.get("content") if isinstance(raw, dict) else getattr(raw, "content", None)
    if not isinstance(content, list) or not content:
        return None
    values = []
    for token in content:
        value = token.get("logprob") if isinstance(token, dict) else getattr(token, "logprob", None)
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            return None
        values.append(min(float(value), 0.0))
    return tuple(values)
