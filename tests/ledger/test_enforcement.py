"""Budgets enforced through the real cascade, a real ledger and the loopback server; the
core behaviours on both backends (``ledger_url``: a SQLite file, a PostgreSQL database)."""

from __future__ import annotations

import multiprocessing
import os
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.clock import FixedClock, format_ts
from cascadeflow_cli.config import BudgetsConfig, parse_config
from cascadeflow_cli.engine.cascade import Cascade
from cascadeflow_cli.errors import BudgetBlockedError, PricingError
from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.enforcement import WindowState, judge
from cascadeflow_cli.ledger.status import budget_status
from cascadeflow_cli.ledger.storage import Hold
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.conftest import GOOD_ANSWER, config_text, ledger_rows
from tests.pg_fixtures import table_rows

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# fixed prices and token counts: every mini call costs exactly $0.001, every big one $0.01
PRICED = "input_cost_per_million = 0.0\noutput_cost_per_million = {}\n"


def state(limit: int, spent: int, reserved: int = 0, name: str = "daily") -> WindowState:
    return WindowState(name, limit, spent, reserved, NOW, NOW + timedelta(days=1))


# --- the policy, as a pure function ----------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "spent", "estimate", "degraded", "expected"),
    [
        ("block", 0, 10, None, "allow"),
        ("block", 79, 10, None, "allow"),
        ("block", 80, 10, None, "warn"),
        ("block", 90, 10, None, "warn"),  # exactly reaching the limit is allowed
        ("block", 91, 10, None, "block"),  # crossing it is not
        ("warn", 500, 10, None, "warn"),  # warn mode never refuses
        ("degrade", 85, 10, 2, "warn"),
        ("degrade", 90, 5, 2, "degrade"),  # at degrade_at: cheaper chain
        ("degrade", 50, 60, 2, "degrade"),  # full chain could cross the top, the cheap one cannot
        ("degrade", 99, 60, 2, "block"),  # even the cheap chain could cross
        ("degrade", 95, 10, None, "block"),  # no cheaper chain, and the full one crosses
        ("degrade", 92, 5, None, "warn"),  # no cheaper chain, but still room
    ],
)
def test_policy(mode: str, spent: int, estimate: int, degraded: int | None, expected: str) -> None:
    policy = BudgetsConfig(mode=mode)
    verdict = judge("alice", [state(100, spent)], estimate, degraded, policy)
    assert verdict.action == expected
    if expected == "block":
        assert "alice's daily budget" in (verdict.message or "")


def test_tightest_window_decides_and_reservations_count() -> None:
    policy = BudgetsConfig(mode="block")
    roomy, tight = state(1000, 10, name="monthly"), state(100, 60, reserved=35)
    verdict = judge("u", [roomy, tight], 10, None, policy)
    assert verdict.action == "block" and verdict.window is tight


# --- through the cascade ----------------------------------------------------------------


def make(
    tmp_path: Path,
    server: ReplayServer,
    *,
    mode: str = "block",
    budgets: str = "",
    extra: str = "",
    hooks: str = "",
    at: datetime = NOW,
    db: str | None = None,
) -> tuple[Cascade, str]:
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=100)
    )
    server.set_behavior("gpt-4o", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=100))
    text = config_text(
        server.base_url,
        mini_extra=PRICED.format(10),
        big_extra=PRICED.format(100),
        extra=f"max_tokens = 100\n{extra}",
    )
    text += f'\n[budgets]\nmode = "{mode}"\n{budgets}\n{hooks}'
    db = db or str(tmp_path / "ledger.db")
    config = parse_config(text, tmp_path / "cascadeflow.toml")
    ledger = open_store(db, FixedClock(at))
    return Cascade(config, ledger, clock=FixedClock(at), sleep=lambda s: None), db


def test_block_mode_stops_before_the_limit_and_never_calls_the_provider(
    tmp_path: Path, server: ReplayServer, ledger_url: str
) -> None:
    cascade, db = make(tmp_path, server, db=ledger_url)
    assert cascade.ledger is not None
    set_budget(cascade.ledger, "alice", BudgetConfig(daily=Decimal("0.0035")))
    for _ in range(3):  # each accepted draft costs $0.001; the worst case is $0.011 with big
        cascade.run("What is the capital of France?", "alice", models=["mini"])
    calls_before = server.request_count()
    with pytest.raises(BudgetBlockedError, match="alice's daily budget") as info:
        cascade.run("What is the capital of France?", "alice", models=["mini"])
    assert info.value.exit_code == 3
    assert server.request_count() == calls_before
    rows = table_rows(db, "requests")
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "blocked"]
    assert sum(r["cost_nusd"] for r in rows) == 3_000_000 <= 3_500_000
    assert table_rows(db, "reservations") == []


def test_the_next_day_in_the_users_time_zone_starts_afresh(tmp_path: Path, server: ReplayServer,
                                                            ledger_url: str) -> None:
    berlin = 'timezone = "Europe/Berlin"'
    late = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    cascade, db = make(tmp_path, server, db=ledger_url, at=late)
    cascade.config = parse_config(  # same config plus the time zone
        config_text(
            server.base_url,
            mini_extra=PRICED.format(10),
            big_extra=PRICED.format(100),
            extra="max_tokens = 100",
        )
        + f'\n[ledger]\n{berlin}\n[budgets]\nmode = "block"\n'
    )
    assert cascade.ledger is not None and cascade.gate is not None
    cascade.gate.config = cascade.config
    set_budget(cascade.ledger, "alice", BudgetConfig(daily=Decimal("0.0015")))
    cascade.run("hello there, how are you?", "alice", models=["mini"])
    with pytest.raises(BudgetBlockedError):
        cascade.run("hello there, how are you?", "alice", models=["mini"])
    after_midnight = FixedClock(datetime(2026, 11, 25, 23, 0, tzinfo=UTC))  # 00:00 in Berlin
    cascade.ledger.clock = after_midnight
    cascade.run("hello there, how are you?", "alice", models=["mini"])
    assert [r["status"] for r in table_rows(db, "requests")] == ["ok", "blocked", "ok"]


def test_warn_once_per_window_and_never_refuse(tmp_path: Path, server: ReplayServer, ledger_url: str) -> None:
    cascade, db = make(tmp_path, server, db=ledger_url, mode="warn")
    assert cascade.ledger is not None
    set_budget(cascade.ledger, "bob", BudgetConfig(daily=Decimal("0.002")))
    results = [cascade.run("hello there, how are you?", "bob", models=["mini"]) for _ in range(4)]
    assert [r.enforcement for r in results] == ["allow", "allow", "warn", "warn"]
    assert results[2].enforcement_message is not None and "warning" in results[2].enforcement_message
    assert results[3].enforcement_message is None  # told once per window
    assert len(table_rows(db, "budget_warnings")) == 1
    assert sum(r["cost_nusd"] for r in table_rows(db, "requests")) == 4_000_000  # over, as warned


def test_degrade_mode_drops_the_expensive_model(tmp_path: Path, server: ReplayServer,
                                                ledger_url: str) -> None:
    cascade, _ = make(tmp_path, server, db=ledger_url, mode="degrade")
    assert cascade.ledger is not None
    # the first request escalates and spends $0.011; the full chain's worst case ($0.011)
    # would then cross $0.02, mini's alone ($0.001) would not
    set_budget(cascade.ledger, "carol", BudgetConfig(daily=Decimal("0.02")))
    server.set_behavior(
        "gpt-4o-mini",
        ModelBehavior(
            answer="I'm sorry, but I can't help with that.", prompt_tokens=10, completion_tokens=100
        ),
    )
    first = cascade.run("Explain in detail how tides work.", "carol")
    assert first.escalated and first.enforcement == "allow"
    result = cascade.run("Explain in detail how tides work.", "carol")
    assert result.enforcement == "degrade" and result.model == "mini" and not result.escalated
    assert "cheaper models" in (result.enforcement_message or "")


def test_an_explicit_degraded_chain_that_is_dearer_is_not_used(tmp_path: Path, server: ReplayServer) -> None:
    cascade, _ = make(tmp_path, server, mode="degrade", budgets='degraded_models = ["big"]')
    worst_case = cascade.costs.estimate([{"role": "user", "content": "hi"}], 100)
    assert cascade.costs.degraded_chain(["mini", "big"], worst_case) is None
    assert cascade.costs.degraded_chain(["big"], worst_case) is None


def test_unknown_users_without_a_default_are_allowed_and_recorded(
    tmp_path: Path, server: ReplayServer
) -> None:
    cascade, db = make(tmp_path, server)
    result = cascade.run("hello there, how are you?", "stranger", models=["mini"])
    assert result.enforcement == "allow"
    assert ledger_rows(db, "requests")[0]["user"] == "stranger"


def test_the_default_budget_applies_to_users_without_their_own(tmp_path: Path, server: ReplayServer,
                                                                ledger_url: str) -> None:
    cascade, _ = make(tmp_path, server, db=ledger_url, budgets="[budgets.default]\ndaily = 0.0015")
    cascade.run("hello there, how are you?", "dave", models=["mini"])
    with pytest.raises(BudgetBlockedError):
        cascade.run("hello there, how are you?", "dave", models=["mini"])
    assert cascade.ledger is not None
    status = budget_status(cascade.ledger, cascade.config, "dave")
    assert status.source == "default" and status.states[0].spent_nusd == 1_000_000


def test_unknown_price_blocks_unless_a_fallback_is_set(tmp_path: Path, server: ReplayServer) -> None:
    model = f'\n[[models]]\nname = "odd"\nmodel = "openai/odd-model"\napi_base = "{server.base_url}"\n'
    server.set_behavior(
        "odd-model", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=100)
    )
    db = tmp_path / "l.db"
    base = config_text(server.base_url, extra_models=model, chain='["odd"]')
    with pytest.raises(PricingError):
        Cascade(parse_config(base), open_ledger(db)).run("hi there", "erin")
    assert server.request_count() == 0
    fallback = (
        base + "\n[budgets]\nfallback_input_cost_per_million = 1\nfallback_output_cost_per_million = 2\n"
    )
    result = Cascade(parse_config(fallback), open_ledger(db)).run("hi there", "erin")
    assert result.cost_nusd == 10 * 1000 + 100 * 2000
    assert ledger_rows(db, "calls")[0]["cost_source"] == "fallback"


def test_a_failed_request_releases_its_reservation(tmp_path: Path, server: ReplayServer,
                                                   ledger_url: str) -> None:
    cascade, db = make(tmp_path, server, db=ledger_url)
    assert cascade.ledger is not None
    set_budget(cascade.ledger, "fay", BudgetConfig(daily=Decimal("1")))
    server.set_behavior("gpt-4o", ModelBehavior(status=500))
    with pytest.raises(Exception, match="500"):
        cascade.run("hello there, how are you?", "fay", models=["big"])
    assert table_rows(db, "reservations") == []
    assert table_rows(db, "requests")[0]["status"] == "error"


def test_reservations_of_dead_processes_and_expired_ones_are_dropped(
    tmp_path: Path, server: ReplayServer, ledger_url: str
) -> None:
    cascade, db = make(tmp_path, server, db=ledger_url)
    assert cascade.ledger is not None
    set_budget(cascade.ledger, "gus", BudgetConfig(daily=Decimal("0.02")))
    dead = multiprocessing.get_context("spawn").Process(target=os.getpid)
    dead.start()
    dead.join()
    import socket

    with cascade.ledger.budget_lock("gus") as txn:  # the storage interface: both backends
        for rid, pid, expires in (
            ("dead", dead.pid, NOW + timedelta(hours=1)),
            ("expired", os.getppid(), NOW - timedelta(seconds=1)),
            ("not-ours", os.getpid(), NOW - timedelta(seconds=1)),  # our pid, not ours (reused): by expiry
        ):
            host = "elsewhere" if rid == "expired" else socket.gethostname()
            txn.reserve(Hold(rid, "gus", "x", 10_000_000, format_ts(NOW), format_ts(expires), pid or 0, host))
    # with $0.03 held by ghosts the $0.011 request would cross $0.02; once they go, it fits
    result = cascade.run("hello there, how are you?", "gus")
    assert result.answer == GOOD_ANSWER
    assert table_rows(db, "reservations") == []
    # a live process of this host past its expiry (a wall clock moved forward, or it is
    # stopped) keeps its reservation: it settles or releases it itself (hostile-25)
    with cascade.ledger.budget_lock("gus") as txn:
        txn.reserve(Hold("live", "gus", "x", 10_000_000, format_ts(NOW), format_ts(NOW - timedelta(hours=1)),
                         os.getppid(), socket.gethostname()))
    cascade.run("hello there, how are you?", "gus", models=["mini"])
    assert [r["id"] for r in table_rows(db, "reservations")] == ["live"]


def test_a_clock_moved_forward_does_not_drop_a_reservation_still_in_flight(
    tmp_path: Path, server: ReplayServer, ledger_url: str
) -> None:
    """hostile-25: the wall clock jumped a day forward (NTP, a resumed VM; or a second process
    whose clock runs ahead) while a request was in flight; its reservation expired by
    ``expires_at`` and the next request was let through as if nothing were held: with
    `cascade ask` through faketime, $0.86 spent of a $0.60 total budget."""
    cascade, db = make(tmp_path, server, db=ledger_url)
    assert cascade.ledger is not None and cascade.gate is not None
    set_budget(cascade.ledger, "hal", BudgetConfig(total=Decimal("0.0015")))  # room for one $0.001 call
    in_flight = cascade.gate.reserve("hal", "first", ["mini"], estimate=lambda names: 1_000_000,
                                     degraded=lambda names: None, ttl_s=60.0)
    assert in_flight.action == "allow" and in_flight.reservation_id is not None
    assert isinstance(cascade.ledger.clock, FixedClock)
    cascade.ledger.clock.at = cascade.clock.at = NOW + timedelta(days=1)  # type: ignore[attr-defined]
    with pytest.raises(BudgetBlockedError, match="hal's total budget"):
        cascade.run("hello there, how are you?", "hal", models=["mini"])
    assert [r["amount_nusd"] for r in table_rows(db, "reservations")] == [1_000_000]
    cascade.ledger.release(in_flight.reservation_id)  # the first request ended unpaid: room again
    from cascadeflow_cli.ledger import liveness

    noted = len(liveness._held)  # what this process times of its own stays what is in flight
    assert cascade.run("hello there, how are you?", "hal", models=["mini"]).cost_nusd == 1_000_000
    with pytest.raises(BudgetBlockedError):
        cascade.run("hello there, how are you?", "hal", models=["mini"])
    assert len(liveness._held) == noted


def test_hooks_filter_models_and_fail_closed(tmp_path: Path, server: ReplayServer) -> None:
    (tmp_path / "tiers_hook.py").write_text(
        textwrap.dedent("""
        def only_cheap(ctx, models):
            return ["mini"] if ctx.user_id.startswith("free") else models
        def explode(ctx):
            raise RuntimeError("tier service down")
        def garbage(ctx):
            return 42
        def loosen(ctx):
            return ("allow", "premium user")
    """)
    )
    cascade, _ = make(tmp_path, server, hooks='[hooks]\non_model_filter = "tiers_hook:only_cheap"')
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer="Maybe.", prompt_tokens=10, completion_tokens=100)
    )
    assert cascade.run("Explain in detail how tides work.", "free-user").model == "mini"
    assert cascade.run("Explain in detail how tides work.", "paid-user").model == "big"
    for hook, match in (("explode", "tier service down"), ("garbage", "returned 42")):
        cascade, _ = make(tmp_path, server, hooks=f'[hooks]\non_budget_check = "tiers_hook:{hook}"')
        with pytest.raises(BudgetBlockedError, match=match):
            cascade.run("hello there, how are you?", "x")
    cascade, _ = make(tmp_path, server, hooks='[hooks]\non_budget_check = "tiers_hook:loosen"')
    assert cascade.ledger is not None
    set_budget(cascade.ledger, "y", BudgetConfig(daily=Decimal("0.000001")))
    with pytest.raises(BudgetBlockedError):  # a hook can tighten, never loosen
        cascade.run("hello there, how are you?", "y")


def test_a_zero_limit_blocks_any_cost_and_reads_as_fully_used() -> None:
    """Issue 11: a $0 limit divided by zero; it means "may spend nothing"."""
    from datetime import UTC, datetime

    from cascadeflow_cli.config import BudgetsConfig
    from cascadeflow_cli.ledger.enforcement import WindowState, judge

    now = datetime(2026, 1, 1, tzinfo=UTC)
    empty = WindowState("daily", 0, 0, 0, now, None)
    spent = WindowState("daily", 0, 5, 0, now, None)
    assert empty.fraction() == 1.0 and empty.pct_used == 100.0 and spent.pct_used == 100.0
    assert judge("u", [empty], 1, None, BudgetsConfig(mode="block")).action == "block"
    assert judge("u", [empty], 1, 1, BudgetsConfig(mode="degrade")).action == "block"
    assert judge("u", [empty], 0, None, BudgetsConfig(mode="block")).action != "block"  # free costs nothing
    assert judge("u", [spent], 0, None, BudgetsConfig(mode="warn")).action == "warn"
