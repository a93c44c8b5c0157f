"""Budgets through the real cascade on both backends (``ledger_url``: a SQLite file and a
real PostgreSQL database): team budgets checked with the member's own, processes racing
for the last dollar, orphaned reservations, and (PostgreSQL) the database's clock."""

from __future__ import annotations

import multiprocessing
import os
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cascadeflow_cli.clock import FixedClock, format_ts
from cascadeflow_cli.config import parse_config
from cascadeflow_cli.engine.cascade import Cascade
from cascadeflow_cli.errors import BudgetBlockedError
from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.budgets import BudgetConfig
from cascadeflow_cli.ledger.storage import Hold
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.conftest import GOOD_ANSWER, config_text

QUERY = "hello there, how are you?"
PRICED = "input_cost_per_million = 0.0\noutput_cost_per_million = {}\n"  # mini: $0.001 a call


def config(server: ReplayServer, budgets: str = "", latency: float = 0.0) -> str:
    behavior = ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=100, latency_s=latency)
    server.set_behavior("gpt-4o-mini", behavior)
    text = config_text(server.base_url, mini_extra=PRICED.format(10), big_extra=PRICED.format(100),
                       extra="max_tokens = 100")
    return text + f'\n[budgets]\nmode = "block"\n{budgets}\n'


TEAM = '[budgets.teams.crew]\nmembers = ["ann", "bob"]\ndaily = 0.003\n'


def test_a_team_budget_holds_for_members_without_their_own(ledger_url: str, server: ReplayServer) -> None:
    with open_store(ledger_url) as ledger:
        cascade = Cascade(parse_config(config(server, TEAM)), ledger, sleep=lambda s: None)
        for user in ("ann", "bob", "ann"):  # $0.001 each: the team's $0.003 is used up
            cascade.run(QUERY, user, models=["mini"])
        with pytest.raises(BudgetBlockedError, match=r"team crew's daily budget: spent \$0\.003"):
            cascade.run(QUERY, "bob", models=["mini"])
        cascade.run(QUERY, "carol", models=["mini"])  # not a member
        assert ledger.total_spend("ann") + ledger.total_spend("bob") == 3_000_000
        assert ledger.reserved_spend("bob") == 0


def _hammer(text: str, url: str, user: str, n: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with open_store(url) as ledger:
        cascade = Cascade(parse_config(text), ledger, sleep=lambda s: None)
        ok = blocked = 0
        for _ in range(n):
            try:
                cascade.run(QUERY, user, models=["mini"])
                ok += 1
            except BudgetBlockedError:
                blocked += 1
    out.put((ok, blocked))


def test_processes_racing_never_overspend_user_or_team(ledger_url: str, server: ReplayServer) -> None:
    team = '[budgets.teams.crew]\nmembers = ["ann", "bob"]\ndaily = 0.010\n'
    text = config(server, team, latency=0.02)
    with open_store(ledger_url) as ledger:
        ledger.set_budget("ann", BudgetConfig(daily=Decimal("0.006")))
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    users = ("ann", "bob", "ann", "bob")
    procs = [ctx.Process(target=_hammer, args=(text, ledger_url, user, 5, out)) for user in users]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(30)
    with open_store(ledger_url) as ledger:
        ann, bob = ledger.total_spend("ann"), ledger.total_spend("bob")
        assert ann <= 6_000_000 and ann + bob <= 10_000_000
        assert sum(r[0] for r in results) == 10 and ann + bob == 10_000_000  # every dollar the team has
        assert ledger.reserved_spend("ann") == ledger.reserved_spend("bob") == 0


def test_orphans_expire_by_deadline_and_only_this_hosts_dead_pids(ledger_url: str,
                                                                   server: ReplayServer) -> None:
    now = datetime.now(UTC)
    dead = multiprocessing.get_context("spawn").Process(target=os.getpid)
    dead.start()
    dead.join()
    with open_store(ledger_url) as ledger:
        ledger.set_budget("gus", BudgetConfig(daily=Decimal("0.02")))
        with ledger.budget_lock("gus") as txn:
            for rid, pid, host, expires in (
                ("dead-here", dead.pid, socket.gethostname(), now + timedelta(hours=1)),
                ("expired", os.getpid(), "elsewhere", now - timedelta(seconds=1)),
                ("elsewhere", dead.pid, "another-host", now + timedelta(hours=1)),
            ):
                txn.reserve(Hold(rid, "gus", "x", 5_000_000, format_ts(now), format_ts(expires), pid or 0,
                                 host))
        cascade = Cascade(parse_config(config(server)), ledger, sleep=lambda s: None)
        cascade.run(QUERY, "gus", models=["mini"])
        # the other host's reservation stays until its deadline: its pid means nothing here
        assert ledger.reserved_spend("gus") == 5_000_000


def test_postgresql_windows_follow_the_database_clock_not_a_skewed_host(pg_url: str) -> None:
    from cascadeflow_cli.dburl import parse_location
    from cascadeflow_cli.ledger.postgres.connection import DatabaseClock, connect

    location = parse_location(pg_url)
    conn = connect(location)
    try:
        behind = FixedClock(datetime.now(UTC) - timedelta(minutes=2))  # a host 2 minutes slow
        clock = DatabaseClock(lambda: conn, host=behind)
        offset = clock.measure()
        assert abs(offset - timedelta(minutes=2)) < timedelta(seconds=2)
        server_now = conn.execute("select extract(epoch from clock_timestamp())::float8").fetchone()
        assert server_now is not None
        assert abs(clock.now().timestamp() - server_now[0]) < 2  # what the host believes is the server's time
    finally:
        conn.close()


def test_postgresql_clock_follows_a_host_clock_set_back(pg_url: str) -> None:
    """hostile-25: a host clock set back an hour kept the offset measured before, so the
    ledger's clock ran an hour early until the host caught up with the last measure (70
    minutes): rows stamped in the wrong hour (the day before, near midnight) and each
    reservation past its deadline on every other host's check as it was made."""
    from cascadeflow_cli.dburl import parse_location
    from cascadeflow_cli.ledger.postgres.connection import DatabaseClock, connect

    conn = connect(parse_location(pg_url))
    try:
        host = FixedClock(datetime.now(UTC))
        clock = DatabaseClock(lambda: conn, host=host)

        def server_now() -> float:
            row = conn.execute("select extract(epoch from clock_timestamp())::float8").fetchone()
            assert row is not None
            return float(row[0])

        assert abs(clock.now().timestamp() - server_now()) < 2
        for step in (timedelta(hours=-1), timedelta(minutes=5), timedelta(days=1)):
            host.at += step  # set back an hour, then forward under the 10-minute refresh, then a day
            assert abs(clock.now().timestamp() - server_now()) < 2, step
    finally:
        conn.close()
