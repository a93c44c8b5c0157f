"""Live quality signals of a draft (issue 9): token log-probabilities and the agreement of
N sampled answers, asked of the provider where it offers them.

``n`` is asked for first; a provider that ignores it (one choice back) gets the missing
samples as separate calls, each priced and recorded as a call of role ``sample``. A
provider that ignores ``logprobs`` simply yields none: the feature is then absent. One
that *rejects* either (HTTP 400) is asked again without them, so asking never costs the
user their answer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from cascadeflow_cli.config import ModelConfig
from cascadeflow_cli.engine.providers.base import ChatRequest, Choice, Completion, Provider, complete
from cascadeflow_cli.errors import ProviderBadRequestError, ProviderError
from cascadeflow_cli.quality.agreement import majority
from cascadeflow_cli.quality.live_signals import live_signals


@dataclass(frozen=True)
class SampledDraft:
    """The draft call (its text the majority answer), the extra calls it took, and the
    signals for the quality check."""

    completion: Completion
    extra_calls: tuple[Completion | ProviderError, ...]  # one per sample asked separately
    samples: tuple[str, ...] | None  # every sample's text, when more than one was asked
    agreement: float | None  # the majority's share of the samples
    logprobs: tuple[float, ...] | None  # of the chosen sample, when the provider sent them


def sample_draft(
    provider: Provider,
    model: ModelConfig,
    request: ChatRequest,
    *,
    samples: int,
    logprobs: bool,
    query: str,
    domain: str | None,
    sleep: Callable[[float], None],
    on_retry: Callable[[Any], None] | None = None,
    on_call: Callable[[Completion | ProviderError], None] | None = None,
    on_send: Callable[[int], None] | None = None,
) -> SampledDraft:
    """Ask the draft model for ``samples`` answers (with log-probabilities if ``logprobs``).
    Raises the first call's ProviderError (the draft failed); a later sample's failure is
    kept as that call's outcome and the vote goes on with the samples that came.
    ``on_call`` hears of each call's outcome as it comes (the first call's answer, then
    every extra call's), so a call already paid for is kept when a later one is
    interrupted (the cascade records and journals it at once); ``on_send(n)`` before each
    call, ``n`` the answers it asks for (the cascade journals it as in flight)."""
    def heard(call: Completion | ProviderError) -> None:
        if on_call is not None:
            on_call(call)

    def sending(n: int) -> None:
        if on_send is not None:
            on_send(n)

    asked = replace(request, logprobs=logprobs, n=samples)
    sending(samples)
    try:
        first = complete(provider, model, asked, sleep=sleep, on_retry=on_retry)
    except ProviderBadRequestError:
        if not (logprobs or samples > 1):
            raise
        asked = replace(request)  # a provider that refuses the extras: ask plainly
        sending(1)
        first = complete(provider, model, asked, sleep=sleep, on_retry=on_retry)
    heard(first)
    choices: list[Choice] = list(first.choices) or [Choice(first.text, first.finish_reason)]
    choices = choices[:samples]
    extra: list[Completion | ProviderError] = []
    single = replace(asked, n=1)
    while len(choices) + sum(isinstance(e, ProviderError) for e in extra) < samples:
        sending(1)
        try:
            more = complete(provider, model, single, sleep=sleep, on_retry=on_retry)
        except ProviderError as exc:
            extra.append(exc)
            heard(exc)
            continue
        extra.append(more)
        heard(more)
        choices.append(more.choices[0] if more.choices else Choice(more.text, more.finish_reason))
    if samples <= 1:
        return SampledDraft(first, (), None, None, first.logprobs)
    texts = [c.text for c in choices]
    vote = majority(query, domain, texts)
    chosen = choices[vote.index]
    draft = replace(first, text=chosen.text, finish_reason=chosen.finish_reason)
    return SampledDraft(draft, tuple(extra), tuple(texts), round(vote.share, 4), chosen.logprobs)


@cache
def _accepted_keywords(validate: Callable[..., Any]) -> frozenset[str] | None:
    """The live-signal keywords ``validate`` takes; None when it takes any (``**live``)."""
    try:
        params = list(inspect.signature(validate).parameters.values())
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params)


def validate_with_signals(
    validator: Any,
    query: str,
    text: str,
    *,
    finish_reason: str | None,
    domain: str | None,
    logprobs: tuple[float, ...] | None,
    agreement: float | None,
) -> Any:
    """The quality check, given the live signals as the calibrated model's features
    (``logprob_mean``, ``logprob_min``, ``logprob_p10``, ``logprob_p25``, ``agreement``:
    quality/live_signals.py) when its ``validate`` takes them (quality-model's
    ``CalibratedValidator.validate(..., **live)``); the rule validator takes none, and
    then they only go to the ledger (``call_signals``) for `calibrate --from-ledger`."""
    live = live_signals(logprobs, agreement)
    accepted = _accepted_keywords(type(validator).validate)
    if accepted is not None:
        live = {k: v for k, v in live.items() if k in accepted}
    return validator.validate(query, text, finish_reason=finish_reason, domain=domain, **live)
