"""Shadow verification of accepted drafts (issue 9) through the real replay server and a
real ledger: the user's answer first, the verifier's label after, its cost counted against
the user's budget; failures and budget refusals never touch the answer."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.config import parse_config
from cascadeflow_cli.engine import shadow
from cascadeflow_cli.engine.cascade import Cascade
from cascadeflow_cli.engine.shadow import should_shadow
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.labels import calibration_rows
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.conftest import config_text, ledger_rows

MATH = "A shop sells 6 boxes of 7 pens. How many pens is that?"
DRAFT = "There are 6 boxes with 7 pens each, so 6 * 7 = 42 pens in all.\n#### 42"


def cascade_with(tmp_path: Path, server: ReplayServer, rate: float = 1.0, extra: str = "") -> Cascade:
    text = config_text(server.base_url, extra=f"[quality]\nshadow_rate = {rate}\n{extra}\n")
    config = parse_config(text, tmp_path / "cascadeflow.toml")  # hooks load from next to it
    return Cascade(config, open_ledger(tmp_path / "ledger.db"), sleep=lambda s: None)


@pytest.fixture(autouse=True)
def _no_shadow_left_behind() -> None:
    yield
    assert shadow.wait_pending(10) == 0


def test_sampling_is_deterministic_in_the_request_id_and_near_the_rate() -> None:
    ids = [f"{i:032x}" for i in range(4000)]
    picked = [i for i in ids if should_shadow(i, 0.05)]
    assert picked == [i for i in ids if should_shadow(i, 0.05)]
    assert 0.035 < len(picked) / len(ids) < 0.065
    assert not any(should_shadow(i, 0.0) for i in ids[:100]) and all(should_shadow(i, 1.0) for i in ids[:100])


def test_agreeing_verifier_labels_the_draft_good_without_delaying_the_answer(
    tmp_path: Path, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(answer="6 * 7 = 42\n#### 42", latency_s=1.5))
    cascade = cascade_with(tmp_path, server)
    result = cascade.run(MATH, "alice", domain="math")
    assert result.draft_accepted and result.answer == DRAFT
    # run() returned with the verifier's answer still 1.5 s away: the user did not wait for it
    assert ledger_rows(tmp_path / "ledger.db", "quality_labels") == [] and shadow.wait_pending(0) == 1
    assert shadow.wait_pending() == 0
    db = tmp_path / "ledger.db"
    [label] = ledger_rows(db, "quality_labels")
    assert (label["source"], label["correct"], label["method"], label["status"]) == (
        "shadow",
        1,
        "number",
        "ok",
    )
    calls = ledger_rows(db, "calls")
    assert [c["role"] for c in calls] == ["draft", "shadow"]
    assert label["call_id"] == calls[1]["id"] and calls[1]["model"] == "big"
    [req] = ledger_rows(db, "requests")
    # the shadow is paid for: it is in the request's cost (and the savings shrink by it)
    assert req["cost_nusd"] == result.cost_nusd + calls[1]["cost_nusd"] > result.cost_nusd
    assert req["savings_nusd"] == result.savings_nusd - calls[1]["cost_nusd"]
    # ... and counted against the user's budget windows, reservation settled
    [spend] = ledger_rows(db, "spend_totals")
    assert spend["cost_nusd"] == req["cost_nusd"]
    assert ledger_rows(db, "reservations") == []
    [row] = calibration_rows(cascade.ledger)
    assert row["correct"] is True and row["verifier_correct"] is True and row["response"] == DRAFT


def test_disagreeing_verifier_labels_the_draft_bad(tmp_path: Path, server: ReplayServer) -> None:
    wrong = "Each of the 6 boxes holds 8 pens (the 7 is a typo), which makes 48 pens in all.\n#### 48"
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=wrong))
    server.set_behavior("gpt-4o", ModelBehavior(answer="#### 42"))
    cascade = cascade_with(tmp_path, server)
    result = cascade.run(MATH, domain="math")
    assert result.draft_accepted
    shadow.wait_pending()
    [label] = ledger_rows(tmp_path / "ledger.db", "quality_labels")
    assert label["correct"] == 0 and label["agreement"] == 0.0


def test_rate_zero_never_calls_the_verifier(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    cascade = cascade_with(tmp_path, server, rate=0.0)
    for _ in range(3):
        cascade.run(MATH, domain="math")
    shadow.wait_pending()
    assert server.request_count("gpt-4o") == 0 and ledger_rows(tmp_path / "ledger.db", "quality_labels") == []


def test_escalated_requests_are_not_shadowed(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=""))
    server.set_behavior("gpt-4o", ModelBehavior(answer=DRAFT))
    cascade = cascade_with(tmp_path, server)
    result = cascade.run(MATH, domain="math")
    shadow.wait_pending()
    assert result.escalated and server.request_count("gpt-4o") == 1
    assert ledger_rows(tmp_path / "ledger.db", "quality_labels") == []


def test_a_failing_shadow_is_recorded_and_the_answer_kept(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(status=503))
    cascade = cascade_with(tmp_path, server)
    result = cascade.run(MATH, domain="math")
    assert result.answer == DRAFT
    shadow.wait_pending()
    db = tmp_path / "ledger.db"
    [label] = ledger_rows(db, "quality_labels")
    assert label["status"] == "error" and label["correct"] is None and "503" in str(label["note"])
    assert server.request_count("gpt-4o") == 1  # one attempt: no retries for a shadow
    shadow_call = ledger_rows(db, "calls")[1]
    assert (shadow_call["role"], shadow_call["status"], shadow_call["cost_nusd"]) == ("shadow", "error", 0)
    assert ledger_rows(db, "reservations") == [] and calibration_rows(cascade.ledger) == []


def test_a_shadow_that_timed_out_is_charged_its_estimate(tmp_path: Path, server: ReplayServer) -> None:
    """Sent, and the verifier may be writing its answer still: the call is billed, so it is
    charged prompt + max_tokens (as a call in flight), added to its request and budget."""
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(answer="#### 42", latency_s=1.5))
    head, big = config_text(server.base_url, extra="[quality]\nshadow_rate = 1.0\n").split('name = "big"')
    text = head + 'name = "big"' + big.replace("timeout = 5", "timeout = 0.5", 1)
    cascade = Cascade(parse_config(text, tmp_path / "cascadeflow.toml"), open_ledger(tmp_path / "ledger.db"),
                      sleep=lambda s: None)
    assert cascade.config.models["big"].timeout == 0.5
    result = cascade.run(MATH, "alice", domain="math")
    assert result.answer == DRAFT
    assert shadow.wait_pending() == 0
    db = tmp_path / "ledger.db"
    draft, shadow_call = ledger_rows(db, "calls")
    assert (shadow_call["role"], shadow_call["status"]) == ("shadow", "error")
    assert shadow_call["output_tokens"] == cascade.config.cascade.max_tokens
    assert shadow_call["cost_source"] == "litellm+estimated-unanswered"
    assert int(str(shadow_call["cost_nusd"])) > 0
    [req] = ledger_rows(db, "requests")
    assert req["cost_nusd"] == int(str(draft["cost_nusd"])) + int(str(shadow_call["cost_nusd"]))
    assert ledger_rows(db, "reservations") == []


def test_a_hanging_shadow_does_not_hold_the_answer(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(hang=True))
    cascade = cascade_with(tmp_path, server)
    result = cascade.run(MATH, domain="math")  # returns although the verifier never answers
    assert result.answer == DRAFT
    assert shadow.wait_pending(0.2) == 1  # still waiting on the verifier: the caller may leave
    server.stop()  # the hung call ends; the shadow records its error
    assert shadow.wait_pending(10) == 0
    [label] = ledger_rows(tmp_path / "ledger.db", "quality_labels")
    assert label["status"] == "error"


def test_a_shadow_the_budget_refuses_is_skipped(tmp_path: Path, server: ReplayServer) -> None:
    """The hook allows the user's request (their first) and refuses the shadow (it sees the
    recorded request): the shadow is not made, the refusal is recorded, the answer stands."""
    (tmp_path / "deny_second.py").write_text(
        "def check(ctx):\n    return ('block', 'no more today') if ctx.total_requests >= 1 else 'allow'\n"
    )
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    cascade = cascade_with(tmp_path, server, extra='[hooks]\non_budget_check = "deny_second:check"')
    result = cascade.run(MATH, "bob", domain="math")
    assert result.draft_accepted and result.answer == DRAFT
    shadow.wait_pending()
    db = tmp_path / "ledger.db"
    [label] = ledger_rows(db, "quality_labels")
    assert label["status"] == "blocked" and "no more today" in str(label["note"])
    assert server.request_count("gpt-4o") == 0 and [c["role"] for c in ledger_rows(db, "calls")] == ["draft"]


def test_a_block_mode_budget_counts_the_shadow(tmp_path: Path, server: ReplayServer) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(answer="#### 42"))
    cascade = cascade_with(tmp_path, server, extra='[budgets]\nmode = "block"')
    set_budget(cascade.ledger, "carol", BudgetConfig(daily=Decimal("1")))
    cascade.run(MATH, "carol", domain="math")
    shadow.wait_pending()
    db = tmp_path / "ledger.db"
    [req] = ledger_rows(db, "requests")
    spent = sum(int(str(c["cost_nusd"])) for c in ledger_rows(db, "calls"))
    assert req["cost_nusd"] == spent
    from cascadeflow_cli.ledger.budgets import window_spend
    from cascadeflow_cli.windows import window

    win = window("daily", cascade.ledger.clock.now(), "UTC")
    assert window_spend(cascade.ledger.db, "carol", win) == spent


def test_shadows_in_flight_are_capped(
    tmp_path: Path, server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shadow, "MAX_PENDING", 2)
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    server.set_behavior("gpt-4o", ModelBehavior(answer="#### 42", latency_s=0.5))
    cascade = cascade_with(tmp_path, server)
    results = [cascade.run(MATH, domain="math") for _ in range(4)]
    assert all(r.draft_accepted for r in results)
    assert shadow.wait_pending() == 0
    labels = ledger_rows(tmp_path / "ledger.db", "quality_labels")
    assert len(labels) == 2 and server.request_count("gpt-4o") == 2


def test_prose_is_compared_by_the_real_embedding_model(tmp_path: Path, server: ReplayServer) -> None:
    """The [semantic] extra (installed with [dev]) gives prose its embedding comparison;
    a paraphrase is a good label, other facts in similar words are no verdict at all."""
    query = "What is the capital of Australia?"
    draft = "The capital of Australia is Canberra, a planned city chosen as a compromise."
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=draft))
    server.set_behavior("gpt-4o", ModelBehavior(answer="Canberra is the capital of Australia."))
    cascade = cascade_with(tmp_path, server)
    assert cascade.run(query).draft_accepted
    shadow.wait_pending(60)
    [label] = ledger_rows(tmp_path / "ledger.db", "quality_labels")
    assert (label["method"], label["correct"]) == ("text-embedding", 1)
    assert 0.8 <= float(str(label["agreement"])) <= 1.0

    server.set_behavior("gpt-4o", ModelBehavior(answer="The capital of Australia is Sydney."))
    other = cascade_with(tmp_path / "other", server)
    assert other.run(query).draft_accepted
    shadow.wait_pending(60)
    [label] = ledger_rows(tmp_path / "other" / "ledger.db", "quality_labels")
    assert label["method"] == "text-embedding" and label["correct"] is None and label["status"] == "ok"
    assert calibration_rows(other.ledger) == []  # no verdict, no training row


def test_a_shadow_call_is_a_live_span_under_its_requests_span(tmp_path: Path, server: ReplayServer) -> None:
    """Live telemetry (a real OTLP/HTTP receiver) gets the shadow call as it gets the other
    calls: a GenAI CLIENT span, in the request's trace, under its ``cascade.request``
    span, with the same ids a backfill of the ledger gives it later."""
    from cascadeflow_cli.config import TelemetryConfig
    from cascadeflow_cli.telemetry import resolve
    from cascadeflow_cli.telemetry.backfill import backfill
    from cascadeflow_cli.telemetry.direct import DirectSink
    from tests.telemetry.collector import Collector

    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=DRAFT))
    # the verifier answers after the one-shot sink's first send has used its flush_timeout
    server.set_behavior("gpt-4o", ModelBehavior(answer="6 * 7 = 42\n#### 42", latency_s=1.5))
    live, later = Collector().start(), Collector().start()
    try:
        settings = resolve(TelemetryConfig(enabled=True, endpoint=live.url, flush_timeout=1.0), {})
        assert settings is not None
        sink = DirectSink(settings)
        cascade = cascade_with(tmp_path, server)
        cascade.on_record = sink.record
        result = cascade.run(MATH, "alice", domain="math")
        assert shadow.wait_pending() == 0
        assert sink.finish() is None
        by_role = {s["attributes"].get("cascade.role", "request"): s for s in live.spans}
        assert sorted(by_role) == ["draft", "request", "shadow"]
        request, mine = by_role["request"], by_role["shadow"]
        assert mine["name"] == "chat gpt-4o" and mine["kind"] == "client"
        assert mine["trace_id"] == request["trace_id"] == result.request_id
        assert mine["parent_span_id"] == request["span_id"] and mine["flags"] & 0x200 == 0  # ours, not remote
        a = mine["attributes"]
        assert (a["gen_ai.operation.name"], a["gen_ai.request.model"]) == ("chat", "gpt-4o")
        assert a["gen_ai.usage.output_tokens"] > 0 and a["gen_ai.usage.cost.amount"] > 0
        assert mine["start"] >= request["end"] and mine["end"] - mine["start"] >= 1.5e9  # after the answer
        cost = [p for p in live.metrics
                if p["name"] == "cascade.cost" and p["attributes"]["cascade.role"] == "shadow"]
        assert cost and cost[-1]["value"] == a["gen_ai.usage.cost.amount"]
        # a backfill of the ledger later names the same span (a backend sees one trace)
        settings = resolve(TelemetryConfig(enabled=True, endpoint=later.url, flush_timeout=5.0), {})
        assert settings is not None and cascade.ledger is not None
        backfill(settings, cascade.ledger.iter_records())
        again = {s["attributes"].get("cascade.role"): s for s in later.wait_for(3)}
        ids = ("trace_id", "span_id", "parent_span_id")
        assert [again["shadow"][k] for k in ids] == [mine[k] for k in ids]
    finally:
        live.stop()
        later.stop()


def test_the_wait_grows_when_a_shadow_past_its_call_asks_for_local_time() -> None:
    """After the verifier's answer the shadow may load the [semantic] model for the
    agreement (seconds on first use under load): the CLI's wait read the deadline once and
    exited with the thread inside onnxruntime (exit -6, 'terminate called without an active
    exception'). A deadline extended while waiting is honoured."""
    import threading
    import time

    def answered_then_slow() -> None:
        shadow._extend_deadline(10.0)  # what _shadow does once the verifier has answered
        time.sleep(1.5)
        with shadow._pending_lock:
            shadow._pending.discard(threading.current_thread())

    thread = threading.Thread(target=answered_then_slow, daemon=True)
    with shadow._pending_lock:
        shadow._pending.add(thread)
        shadow._deadline = time.monotonic() + 0.3  # the call's own deadline, nearly spent
    thread.start()
    assert shadow.wait_pending() == 0
    assert not thread.is_alive()
