"""The cascade: draft with the cheapest model, validate, escalate while the draft is not
good enough; the last model's answer is final. Every call, failed ones included, goes
into the ledger in one transaction with its request."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from cascadeflow_cli.clock import Clock, SystemClock, format_ts
from cascadeflow_cli.config import AppConfig, ModelConfig, check_domain
from cascadeflow_cli.engine import shadow
from cascadeflow_cli.engine.attempts import (
    Attempt,
    InFlightRows,
    PendingRequest,
    answering,
    call_record,
    request_head,
)
from cascadeflow_cli.engine.costs import ChainCosts
from cascadeflow_cli.engine.pricing import (
    Price,
    Usage,
    charge,
    cost_nanos,
)
from cascadeflow_cli.engine.providers import (
    ChatRequest,
    Completion,
    Provider,
    check_credentials,
    complete,
    provider_for,
)
from cascadeflow_cli.engine.providers.base import RetryNotice, model_deadline_s
from cascadeflow_cli.engine.providers.cancel import Cancellation
from cascadeflow_cli.engine.providers.stream import StreamInterrupted, StreamSink, stream_complete
from cascadeflow_cli.engine.recording import (
    UNFINISHED,
    check_max_tokens,
    check_text,
    record_request,
    write_in_flight,
)
from cascadeflow_cli.engine.results import CallResult, CascadeResult  # noqa: F401  (public here)
from cascadeflow_cli.engine.shadow import should_shadow
from cascadeflow_cli.engine.signals import sample_draft, validate_with_signals
from cascadeflow_cli.engine.validators import build_validator
from cascadeflow_cli.errors import (
    BudgetBlockedError,
    CascadeError,
    InputError,
    NotRecordedError,
    ProviderError,
)
from cascadeflow_cli.faults import checkpoint
from cascadeflow_cli.ids import random_id
from cascadeflow_cli.ledger.budgets import ledger_user
from cascadeflow_cli.ledger.enforcement import BudgetGate, release
from cascadeflow_cli.ledger.labels import CallSignals
from cascadeflow_cli.ledger.records import LaterCall
from cascadeflow_cli.ledger.schema import CallRecord, RequestRecord, derive
from cascadeflow_cli.ledger.storage import LedgerStore
from cascadeflow_cli.quality import QualityValidator
from cascadeflow_cli.quality.live_signals import live_signals
from cascadeflow_cli.redact import redact
from cascadeflow_cli.routing.domain import MIN_CONFIDENCE, DomainDetector, DomainResult
from cascadeflow_cli.text import is_blank, user_name

DEFAULT_USER = "default"


class Cascade:
    """Runs queries through a chain of models and records them in the ledger."""

    def __init__(
        self,
        config: AppConfig,
        ledger: LedgerStore | None,
        *,
        clock: Clock | None = None,
        validator: QualityValidator | None = None,
        provider_lookup: Callable[[ModelConfig], Provider] = provider_for,
        sleep: Callable[[float], None] = time.sleep,
        gate: BudgetGate | bool | None = True,
        on_record: Callable[[RequestRecord | LaterCall], None] | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
        call_slots: AbstractContextManager[object] | None = None,
    ) -> None:
        """``gate``: True builds the budget gate over ``ledger`` (the default), False or
        None runs without budgets, or pass your own BudgetGate. ``on_record`` sees each
        request once the ledger holds it (telemetry), and each shadow call once it does (a
        LaterCall, from the shadow's thread); it must not raise. ``on_retry``
        hears of each provider retry before its wait (the CLI prints one line).
        ``call_slots`` (a semaphore shared by `cascade batch`'s workers) is held while a
        request's models are called, not while its budget is reserved or it is recorded."""
        self.call_slots = call_slots or contextlib.nullcontext()
        self.on_record = on_record
        self.on_retry = on_retry
        self.config = config
        self.ledger = ledger
        if gate is True:
            gate = BudgetGate(ledger, config) if ledger is not None else None
        self.gate: BudgetGate | None = gate or None
        # the ledger's clock: on PostgreSQL the database's, so hosts whose clocks disagree stamp alike
        self.clock = clock or (ledger.clock if ledger is not None else SystemClock())
        self.validator = validator or build_validator(config)
        self.provider_lookup = provider_lookup
        self.sleep = sleep
        self.detector = DomainDetector(min_confidence=MIN_CONFIDENCE, custom=config.custom_domains)
        self.costs = ChainCosts(config)  # prices kept per model for this cascade's life
        self._chains: dict[tuple[str, ...] | None, list[ModelConfig]] = {}
        self._in_flight = InFlightRows()  # rows of calls in flight, from templates
        self._users: dict[str, str] = {}  # a non-ASCII name -> the name the ledger keys it on

    def user(self, given: str) -> str:
        """``given`` as the ledger records it: NFC, or its legacy stored form
        (``ledger_user``), looked up once per name (the lookup reads every user name)."""
        name = user_name(given)  # blank, not UTF-8, or a spoofing character: refused before paying
        if self.ledger is None or name.isascii():
            return name
        if (stored := self._users.get(name)) is None:
            if len(self._users) >= 10_000:  # a bound, not an eviction policy
                self._users.clear()
            stored = self._users[name] = ledger_user(self.ledger, name)
        return stored

    def route(self, query: str, domain: str | None = None) -> DomainResult | None:
        """The query's domain: the caller's if given, else detected when ``[domains]`` has
        chains to route to (a detection below MIN_CONFIDENCE is "general"), else None:
        without routing, detection would only cost time (it is CPU under the GIL, which
        `cascade batch`'s threads share)."""
        if domain:
            return DomainResult(check_domain(self.config, domain), 1.0, method="given")
        return self.detector.detect(query) if self.config.domains else None

    def resolve_chain(
        self, models: Sequence[str] | None = None, domain: str | None = None
    ) -> list[ModelConfig]:
        if models:
            return self._chain(tuple(models))
        if domain and domain in self.config.domains:
            return self._chain(tuple(self.config.domains[domain]))
        return self._chain(None)

    def _chain(self, names: tuple[str, ...] | None) -> list[ModelConfig]:
        """config.chain, kept per name list: the config does not change while we run, and
        a served request resolves its chain twice (before and after the gate). A bad list
        raises each time and is not kept; callers get their own list."""
        chain = self._chains.get(names)
        if chain is None:
            chain = self._chains[names] = self.config.chain(names)
        return list(chain)

    def price(self, model: ModelConfig) -> Price:
        return self.costs.price(model)

    def _reservation_ttl(self, chain: Sequence[ModelConfig]) -> float:
        return sum(model_deadline_s(m) for m in chain) + 60.0

    def run(
        self,
        query: str,
        user: str = DEFAULT_USER,
        *,
        domain: str | None = None,
        models: Sequence[str] | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        external_id: str | None = None,
        conversation: list[dict[str, str]] | None = None,
        sink: StreamSink | None = None,
        cancel: Cancellation | None = None,
        stop: tuple[str, ...] = (),
    ) -> CascadeResult:
        """``conversation``: the whole chat to send (`cascade serve`), ``query`` being its
        last user message; ``sink``: stream the final model's answer into it; ``cancel``
        (the sink's own when streaming): its caller leaving stops the cascade, recorded as
        interrupted: no further model is asked, a call in flight is closed where its
        provider allows (else it answers and is priced), what was paid stays; ``stop``: the
        client's stop sequences, sent to each model asked."""
        if is_blank(query):  # nothing a person can see (U+200B, a bidi mark) is not paid for
            raise InputError("the query is empty")
        wanted_tokens = max_tokens or self.config.cascade.max_tokens
        check_max_tokens(wanted_tokens)  # a limit the ledger cannot hold: refused before paying
        user = self.user(user)
        check_text(query=query, user=user, domain=domain, system=system)  # now, not after paying
        routed = self.route(query, domain)
        domain = routed.domain if routed else None
        chain = self.resolve_chain(models, domain)
        for model in chain:  # every price and key is known before anything is spent or reserved
            self.price(model)
            check_credentials(model)
        req = PendingRequest(
            random_id(), user, query, domain, round(routed.confidence, 4) if routed else None,
            external_id, self.clock.now(), time.perf_counter(),
        )
        messages = [{"role": "system", "content": s} for s in [system or self.config.cascade.system] if s]
        if conversation is not None:
            own_system = any(m["role"] == "system" for m in conversation)
            messages = [*([] if own_system else messages), *conversation]
        else:
            messages.append({"role": "user", "content": query})
        req.sink = sink
        req.cancel = cancel or sink
        req.messages, req.max_tokens, req.stop = messages, wanted_tokens, stop
        checkpoint("before-reserve")
        if self.ledger is not None:
            self.ledger.check_writable()  # a read-only ledger or a full disk: before paying
        if self.gate is not None:
            estimate = self.costs.estimate(messages, wanted_tokens)
            req.decision = self.gate.reserve(
                user,
                req.id,
                [m.name for m in chain],
                estimate=estimate,
                degraded=lambda n: self.costs.degraded_chain(n, estimate),
                ttl_s=self._reservation_ttl(chain),
            )
            if req.decision.action == "block":
                self._record(req, status="blocked", error=req.decision.message)
                raise BudgetBlockedError(req.decision.message or f"{user}: blocked by budget")
            chain = self._chain(tuple(req.decision.models))
        checkpoint("after-reserve")
        prices = [self.price(m) for m in chain]
        try:
            with self.call_slots:
                self._call_chain(req, chain, prices, messages, wanted_tokens)
        except KeyboardInterrupt as exc:
            # Calls that finished were paid for: keep them, marked interrupted.
            why = exc.reason if isinstance(exc, StreamInterrupted) else "interrupted by the user"
            self._record_failure(req, status="interrupted", error=why)
            raise
        except CascadeError as exc:
            recorded = self._record_failure(req, status="error", error=str(exc))
            exc.cost_nusd = recorded.cost_nusd if recorded is not None else 0
            raise
        except BaseException:
            if req.decision is not None and self.ledger is not None:
                release(self.ledger, req.decision.reservation_id)
            raise
        return self._record(req, status="ok", error=None, chain=chain, prices=prices)

    def _call_chain(
        self,
        req: PendingRequest,
        chain: list[ModelConfig],
        prices: list[Price],
        messages: list[dict[str, str]],
        wanted_tokens: int,
    ) -> None:
        """Each model in turn until one's answer is accepted (the last one's always is)."""
        query, domain = req.query, req.domain
        for index, (model, price) in enumerate(zip(chain, prices, strict=True)):
            if req.cancel is not None and req.cancel.cancelled:  # nobody waits: ask no model
                raise StreamInterrupted(req.cancel.reason)
            last = index == len(chain) - 1
            tokens = min(wanted_tokens, price.max_output_tokens or wanted_tokens)
            attempt = Attempt(model, "draft" if not last else "verifier", price, max_tokens=tokens)
            req.attempts.append(attempt)
            try:
                self._complete(req, attempt, messages, tokens, sample=not last)
            except ProviderError as exc:
                attempt.error = exc
                if attempt.completion is None and exc.partial is not None:
                    attempt.completion = exc.partial  # type: ignore[assignment]  # paid though failed
                    self._price(attempt, messages)
                if last:
                    raise
                # a failed draft escalates; journaled (its partial may be paid), so that a
                # call in flight's line always follows its request's last whole line
                self._record(req, status="interrupted", error=UNFINISHED, ahead=True)
                continue
            self._price(attempt, messages)
            attempt.quality = validate_with_signals(
                self.validator,
                query,
                attempt.completion.text,
                finish_reason=attempt.completion.finish_reason,
                domain=domain,
                logprobs=attempt.logprobs,
                agreement=attempt.agreement,
            )
            attempt.accepted = last or attempt.quality.passed
            if attempt.accepted:
                break  # the final record is journaled ahead of its commit (recording.py)
            self._record(req, status="interrupted", error=UNFINISHED, ahead=True)  # paid, escalating

    def _complete(
        self, req: PendingRequest, attempt: Attempt, messages: list[dict[str, str]], tokens: int,
        *, sample: bool,
    ) -> None:
        """One model's answer into ``attempt``; for a draft with ``[quality] logprobs`` or
        ``consistency_samples`` > 1, its signals too, and any extra sample calls become
        attempts of role ``sample`` (priced and recorded like every call)."""
        q = self.config.quality
        provider = self.provider_lookup(attempt.model)
        request = ChatRequest(messages, tokens, stop=req.stop, cancel=req.cancel)
        if req.sink is not None and not sample:  # the final model: its answer streams
            if self.ledger is not None:
                req.sink.on_progress = lambda partial: self._journal_partial(req, attempt, partial)
            self._send(req, attempt, tokens)
            try:
                attempt.completion = stream_complete(
                    provider, attempt.model, request, req.sink, sleep=self.sleep, on_retry=self.on_retry
                )
            except (StreamInterrupted, ProviderError) as exc:  # the reader left, or the provider
                # failed mid-answer (a stall): what was generated is paid for
                attempt.completion = exc.partial or attempt.completion  # type: ignore[assignment]
                if attempt.completion is not None:
                    self._price(attempt, messages)
                elif isinstance(exc, StreamInterrupted):  # closed by us before any text: no more is written
                    attempt.in_flight_output = 0
                raise
            return
        if not sample or (not q.logprobs and q.consistency_samples <= 1):
            self._send(req, attempt, tokens)
            attempt.completion = complete(
                provider, attempt.model, request, sleep=self.sleep, on_retry=self.on_retry
            )
            return

        def sending(n: int) -> None:
            """Before each call: the draft's own (``n`` answers asked), or one more sample."""
            if attempt.completion is None:
                self._send(req, attempt, tokens * n)
            else:
                more = Attempt(attempt.model, "sample", attempt.price, max_tokens=tokens)
                req.attempts.append(more)
                self._send(req, more, tokens)

        def answered(call: Completion | ProviderError) -> None:
            """Each call as it comes: the first is the draft's own, the others its samples;
            priced and journaled at once (a signal during the next call keeps it)."""
            if attempt.completion is None and isinstance(call, Completion):
                attempt.completion = call
                self._price(attempt, messages)
            else:
                last = req.attempts[-1]
                more = last if last.role == "sample" and last.in_flight else Attempt(
                    attempt.model, "sample", attempt.price)
                if isinstance(call, ProviderError):
                    more.error = call
                else:
                    more.completion = call
                    self._price(more, messages)
                if more is not last:
                    req.attempts.append(more)
            if self.ledger is not None:
                self._record(req, status="interrupted", error=UNFINISHED, ahead=True)

        drawn = sample_draft(
            provider, attempt.model, request, samples=q.consistency_samples, logprobs=q.logprobs,
            query=req.query, domain=req.domain, sleep=self.sleep, on_retry=self.on_retry,
            on_call=answered, on_send=sending,
        )
        attempt.completion = drawn.completion  # the majority's text, on the first call's usage
        attempt.choices = max(1, len(drawn.completion.choices))
        attempt.logprobs, attempt.agreement = drawn.logprobs, drawn.agreement
        attempt.samples = len(drawn.samples) if drawn.samples else None

    def _send(self, req: PendingRequest, attempt: Attempt, output_tokens: int) -> None:
        """``attempt``'s call is about to be sent: journaled ahead as in flight, charged
        ``output_tokens`` if it never answers (engine/attempts.py). A short line appended
        to this process's log, not fsynced (it outlives a kill -9): about half of what
        the whole record costs (19 vs 42 µs, bench/in_flight.py)."""
        attempt.in_flight_output = output_tokens
        if self.ledger is None:
            return
        ts = str(req.head["ts"]) if req.head is not None else format_ts(req.started_at)
        call = self._in_flight.row(req, attempt, len(req.attempts) - 1, ts)  # the attempt just added
        head = request_head(req, ts, UNFINISHED, store=self.config.ledger.store_prompts)
        if not write_in_flight(self.ledger, req, call, head):
            self._record(req, status="interrupted", error=UNFINISHED, ahead=True)  # the whole record

    def _journal_partial(self, req: PendingRequest, attempt: Attempt, partial: Completion) -> None:
        """A streaming answer so far, journaled ahead (kept if the process is killed)."""
        attempt.completion = partial
        self._price(attempt, req.messages)
        self._record(req, status="interrupted", error=UNFINISHED, ahead=True)

    def _record_failure(self, req: PendingRequest, *, status: str, error: str) -> CascadeResult | None:
        """Record a failed request; if the ledger can't, the journal has it and the error stands."""
        with contextlib.suppress(NotRecordedError):
            return self._record(req, status=status, error=error)
        return None

    def _price(self, attempt: Attempt, messages: list[dict[str, str]]) -> None:
        """Cost from the usage the provider reported; estimated from the text (and marked
        so) when it reported none, never silently $0."""
        assert attempt.completion is not None
        attempt.usage, attempt.cost_nusd, attempt.cost_source = charge(
            attempt.price, attempt.completion.usage, messages, attempt.completion.text
        )

    def _verifier_only_cost(
        self, chain: list[ModelConfig], prices: list[Price], attempts: list[Attempt], calls: list[CallRecord]
    ) -> int:
        """What the last model alone would have cost: its row's cost when it ran (its
        unanswered tries' estimates included), else an estimate from its prices and the
        accepted draft's token counts."""
        final = answering(attempts)[-1]
        if final.model is chain[-1] and final.completion is not None:
            return next(c for a, c in zip(attempts, calls, strict=True) if a is final).cost_nusd
        # one answer's tokens: a call that returned `n` samples reported the output of all
        output = math.ceil(final.usage.output_tokens / final.choices)
        return cost_nanos(prices[-1], Usage(final.usage.input_tokens, output))

    def _record(
        self,
        req: PendingRequest,
        *,
        status: str,
        error: str | None,
        chain: list[ModelConfig] | None = None,
        prices: list[Price] | None = None,
        ahead: bool = False,
    ) -> CascadeResult:
        latency_ms = (time.perf_counter() - req.started) * 1000
        ts = format_ts(req.started_at)
        # no key ever reaches the ledger; UNFINISHED is our own words (redact reads the
        # environment: it was half of a call's journaling in flight, cProfile)
        error = redact(error) if error and error is not UNFINISHED else error
        request_id, user, query, domain, decision = req.id, req.user, req.query, req.domain, req.decision
        attempts = req.attempts
        store = self.config.ledger.store_prompts
        call_records = [call_record(req, a, seq, ts, error, store=store) for seq, a in enumerate(attempts)]
        cost = sum(c.cost_nusd for c in call_records)  # a call in flight: its estimate
        answered = answering(attempts)  # without the extra sample calls of a draft
        final = answered[-1] if answered else None
        ok = status == "ok" and final is not None and final.completion is not None
        draft = answered[0] if answered else None
        verifier_only = (self._verifier_only_cost(chain, prices, attempts, call_records)
                         if ok and chain and prices else 0)
        signals = tuple(
            CallSignals(
                f"{request_id}-{seq}", a.logprobs, a.samples, a.agreement,
                features=live_signals(a.logprobs, a.agreement),
            )
            for seq, a in enumerate(attempts)
            if a.completion is not None and (a.logprobs is not None or a.samples is not None)
        )
        derived = derive(status, call_records, cost, verifier_only if ok else None)
        answer = final.completion.text if ok and final and final.completion else ""
        record = RequestRecord(
            id=request_id,
            ts=ts,
            user=user,
            status=status,
            query=query if store else None,
            answer=(answer if store else None) if ok else None,
            domain=domain,
            domain_confidence=req.domain_confidence,
            model=final.model.name if final else None,
            draft_model=draft.model.name if draft else None,
            draft_accepted=derived.draft_accepted,
            escalated=derived.escalated,
            quality_score=final.quality.score if final and final.quality else None,
            quality_reasons=final.quality.reasons if final and final.quality else (),
            cost_nusd=cost,
            verifier_only_cost_nusd=verifier_only,
            savings_nusd=derived.savings_nusd,
            enforcement=decision.action if decision else "allow",
            enforcement_message=decision.message if decision else None,
            latency_ms=latency_ms,
            error=error,
            calls=tuple(call_records),
            external_id=req.external_id,
            quality_threshold=final.quality.threshold if final and final.quality else None,
            calibrated=bool(getattr(final.quality, "calibrated", False)) if final else False,
            signals=signals,
        )
        result = CascadeResult(record, answer)
        if self.ledger is not None:
            record_request(self.ledger, req, result, record, ahead=ahead)
            if self.on_record is not None and not ahead:  # a journal-only record is not final
                self.on_record(record)
        if result.draft_accepted and chain and should_shadow(request_id, self.config.quality.shadow_rate):
            self._start_shadow(req, result, chain[-1])
        return result

    def _start_shadow(self, req: PendingRequest, result: CascadeResult, verifier: ModelConfig) -> None:
        """Ask the verifier too, in the background (engine/shadow.py); never raises."""
        try:
            messages = list(req.messages)
            shadow.start(
                self,
                shadow.ShadowJob(
                    req.id, req.user, req.query, req.domain, result.answer, messages, req.max_tokens,
                    verifier, format_ts(req.started_at), req.stop,
                ),
            )
        except Exception:  # e.g. no thread to be had: the label is lost, the answer is not
            pass

