"""Shadow verification (issue 9): a share (``[quality] shadow_rate``) of accepted drafts is
also answered by the chain's last model, in a background thread of the same process,
after the user's answer is recorded and returned. Whether the two final answers agree is
recorded as the draft's label; the call is recorded with role ``shadow`` and its cost is
added to the request, through its own budget reservation (a shadow the budget would refuse
is skipped and recorded as ``blocked``). Once recorded, the call goes to the cascade's
``on_record`` hook as a LaterCall (live telemetry sends its span under the request's).

Nothing here may cost the user their answer: every failure ends in a label row with
status ``error`` (or in nothing, if even the ledger refuses), never in an exception.
The CLI waits for pending shadows before it exits (:func:`wait_pending`), at most about
one verifier timeout: the shadow call makes one attempt, without retries.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.engine.attempts import (
    IN_FLIGHT,
    IN_FLIGHT_TYPE,
    in_flight_charge,
    model_call,
    prompt_tokens,
    with_unanswered,
)
from cascadeflow_cli.engine.pricing import Usage, charge
from cascadeflow_cli.engine.providers import ChatRequest, complete
from cascadeflow_cli.engine.recording import record_shadow, write_ahead
from cascadeflow_cli.errors import NotRecordedError, ProviderError
from cascadeflow_cli.ledger.labels import ShadowOutcome, next_seq
from cascadeflow_cli.ledger.records import CallRecord, LaterCall
from cascadeflow_cli.quality.agreement import agreement, answer_kind

if TYPE_CHECKING:
    from cascadeflow_cli.config import ModelConfig
    from cascadeflow_cli.engine.cascade import Cascade

WAIT_SLACK_S = 5.0  # beyond the verifier's timeout: pricing, agreement, the ledger write
# Once the verifier has answered, the rest is local work, bounded without a network: the
# agreement may load the [semantic] model first (its int8 copy made in the user cache on
# first use: 1.1-1.4 s at load 3, past the 5 s slack at load ~20 on 2 cores). The CLI's
# wait grows by this then; exiting sooner killed the thread inside onnxruntime ('terminate
# called without an active exception', exit -6 after the user's answer).
LOCAL_WORK_S = 60.0
# At most this many shadows in flight per process (a batch at a high rate would otherwise
# open a thread per row): a request beyond it is not shadowed, the sample just a bit smaller.
MAX_PENDING = 16

_pending: set[threading.Thread] = set()
_pending_lock = threading.Lock()
_deadline = 0.0  # monotonic time by which every pending shadow should be done
_unrecorded: list[str] = []  # why a paid shadow call waits in the journal (the CLI warns)


def should_shadow(request_id: str, rate: float) -> bool:
    """Deterministic in the request id (reproducible in tests, uniform over uuid ids)."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    u = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2**64
    return u < rate


@dataclass(frozen=True)
class ShadowJob:
    request_id: str
    user: str
    query: str
    domain: str | None
    draft_text: str
    messages: list[dict[str, str]]
    max_tokens: int
    verifier: ModelConfig
    ts: str
    stop: tuple[str, ...] = ()  # the client's stop sequences, as the draft was asked with them


def start(cascade: Cascade, job: ShadowJob) -> threading.Thread | None:
    """Run ``job`` in a daemon thread (the process may exit without it, see wait_pending);
    None when MAX_PENDING shadows are already in flight."""
    global _deadline
    thread = threading.Thread(
        target=_run, args=(cascade, job), name=f"shadow-{job.request_id[:8]}", daemon=True
    )
    with _pending_lock:
        if sum(t.is_alive() for t in _pending) >= MAX_PENDING:
            return None
        _pending.add(thread)
        _deadline = max(_deadline, time.monotonic() + job.verifier.timeout + WAIT_SLACK_S)
    thread.start()
    return thread


def wait_pending(timeout: float | None = None) -> int:
    """Wait for the shadows in flight, until the latest one's deadline (or ``timeout``);
    returns how many are still running after it."""
    fixed = None if timeout is None else time.monotonic() + timeout
    while True:
        with _pending_lock:
            threads = [t for t in _pending if t.is_alive()]
            end = _deadline if fixed is None else fixed  # a shadow past its call may extend it
        if not threads:
            return 0
        left = end - time.monotonic()
        if left <= 0:
            return len(threads)
        threads[0].join(left)


def _extend_deadline(seconds: float) -> None:
    global _deadline
    with _pending_lock:
        _deadline = max(_deadline, time.monotonic() + seconds)


def unrecorded() -> list[str]:
    """The paid shadow calls the ledger could not take since the last call, each a line
    saying where it waits (NotRecordedError's message); taken, so said once."""
    with _pending_lock:
        taken = list(_unrecorded)
        _unrecorded.clear()
    return taken


def _run(cascade: Cascade, job: ShadowJob) -> None:
    try:
        _shadow(cascade, job)
    except NotRecordedError as exc:  # paid, in the journal (or nowhere): the user is told
        with _pending_lock:
            _unrecorded.append(str(exc))
    except Exception:  # a background label must never surface as an error
        pass
    finally:
        with _pending_lock:
            _pending.discard(threading.current_thread())


def _shadow(cascade: Cascade, job: ShadowJob) -> None:
    ledger = cascade.ledger
    if ledger is None:
        return
    verifier = replace(job.verifier, max_retries=0)  # one attempt: the CLI waits for it
    price = cascade.price(verifier)
    tokens = min(job.max_tokens, price.max_output_tokens or job.max_tokens)
    reservation = None
    if cascade.gate is not None:
        decision = cascade.gate.reserve(
            job.user,
            job.request_id,
            [verifier.name],
            estimate=cascade.costs.estimate(job.messages, job.max_tokens),
            degraded=lambda names: None,  # a shadow is optional: never a cheaper stand-in
            ttl_s=verifier.timeout + 60.0,
        )
        if decision.action == "block":
            record_shadow(ledger, ShadowOutcome(job.request_id, "blocked", error=decision.message), None)
            return
        reservation = decision.reservation_id
    seq = next_seq(ledger, job.request_id)
    call_id = f"{job.request_id}-{seq}"
    # journaled ahead as in flight: a process that dies before the answer (the CLI exits
    # after its wait, kill -9) leaves the call, which the provider may bill, for the next command
    usage, cost, source = in_flight_charge(price, prompt_tokens(job.messages), tokens)
    sent = _call(job, call_id, seq, verifier, source, status="error", usage=usage, cost=cost,
                 error=IN_FLIGHT, error_type=IN_FLIGHT_TYPE, max_tokens=tokens)
    journaled = write_ahead(ledger, ShadowOutcome(job.request_id, "error", call=sent, error=IN_FLIGHT),
                            reservation)
    started_ns = time.time_ns()
    try:
        completion = complete(
            cascade.provider_lookup(verifier),
            verifier,
            ChatRequest(job.messages, tokens, stop=job.stop),
            sleep=cascade.sleep,
        )
    except ProviderError as exc:
        # sent and unanswered (a timeout...): charged its estimate, as the cascade's calls
        usage, cost, source = with_unanswered(
            price, prompt_tokens(job.messages), tokens, exc.unanswered, Usage(), 0, price.source)
        call = _call(
            job,
            call_id,
            seq,
            verifier,
            source,
            status="error",
            usage=usage,
            cost=cost,
            error=str(exc),
            latency_ms=getattr(exc, "latency_ms", 0.0),
            max_tokens=tokens,
        )
        record_shadow(ledger, ShadowOutcome(job.request_id, "error", call=call, error=str(exc)), reservation,
                      journaled=journaled)
        _recorded(cascade, job, call, started_ns)
        return
    except BaseException:
        from cascadeflow_cli.ledger.enforcement import release

        release(ledger, reservation)
        raise
    _extend_deadline(LOCAL_WORK_S)
    usage, cost, source = charge(price, completion.usage, job.messages, completion.text)
    kind = answer_kind(job.query, job.domain, [job.draft_text, completion.text])
    verdict = agreement(job.draft_text, completion.text, kind, _embedder() if kind == "text" else None)
    call = _call(
        job,
        call_id,
        seq,
        verifier,
        source,
        status="ok",
        usage=usage,
        cost=cost,
        latency_ms=completion.latency_ms,
        finish_reason=completion.finish_reason,
        answer=completion.text if cascade.config.ledger.store_prompts else None,
        score=verdict.score,
        max_tokens=tokens,
    )
    outcome = ShadowOutcome(
        job.request_id,
        "ok",
        call=call,
        correct=verdict.verdict,
        agreement=verdict.score,
        method=verdict.method,
    )
    record_shadow(ledger, outcome, reservation, journaled=journaled)
    _recorded(cascade, job, call, started_ns)


def _recorded(cascade: Cascade, job: ShadowJob, call: CallRecord, started_ns: int) -> None:
    """Tell the cascade's hook (live telemetry) of a shadow call the ledger now holds, as
    it is told of each recorded request (a call that waits in the journal is not final)."""
    if cascade.on_record is not None:
        cascade.on_record(LaterCall(job.request_id, job.user, job.query, call, started_ns))


def _call(
    job: ShadowJob,
    call_id: str,
    seq: int,
    model: ModelConfig,
    source: str,
    *,
    status: str,
    usage: Usage | None = None,
    cost: int = 0,
    latency_ms: float = 0.0,
    finish_reason: str | None = None,
    answer: str | None = None,
    error: str | None = None,
    score: float | None = None,
    error_type: str | None = None,
    max_tokens: int | None = None,
) -> CallRecord:
    return model_call(
        call_id, job.request_id, job.ts, seq, "shadow", model,
        status=status,
        usage=usage or Usage(),
        cost_nusd=cost,
        cost_source=source,
        latency_ms=latency_ms,
        finish_reason=finish_reason,
        quality_score=score,
        answer=answer,
        error=error,
        error_type=error_type,
        max_tokens=max_tokens,
    )


_embed_lock = threading.Lock()
_embed: list[Callable[[list[str]], Any] | None] = []


def _embedder() -> Callable[[list[str]], Any] | None:
    """The [semantic] extra's embedder when installed, else None (token overlap instead)."""
    with _embed_lock:
        if not _embed:
            try:
                from cascadeflow_cli.routing.semantic import shared_embedder

                _embed.append(shared_embedder().embed)
            except Exception:  # the extra is missing (MissingExtraError) or its model is
                _embed.append(None)
        return _embed[0]
