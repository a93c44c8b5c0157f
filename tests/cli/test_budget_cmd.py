"""`cascade budget ...` and budget enforcement seen from the command line."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import wait_until
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line, config_text, ledger_rows

PRICES = "input_cost_per_million = 0.0\noutput_cost_per_million = {}\n"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def priced(tmp_path: Path, server: ReplayServer) -> CliRunner:
    """mini costs exactly $0.001 a call, big $0.01; block mode."""
    for model in ("gpt-4o-mini", "gpt-4o"):
        server.set_behavior(model, ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=100))
    path = tmp_path / "cascadeflow.toml"
    path.write_text(
        config_text(
            server.base_url,
            mini_extra=PRICES.format(10),
            big_extra=PRICES.format(100),
            extra="max_tokens = 100",
        )
        + '\n[budgets]\nmode = "block"\n'
    )
    return CliRunner(tmp_path, path, tmp_path / "ledger.db")


def test_set_show_list_rm(priced: CliRunner) -> None:
    assert priced("budget", "set", "alice", "--daily", "5", "--monthly", "$50").code == 0
    assert priced("budget", "set", "alice", "--weekly", "20").code == 0  # merges
    assert priced("ask", "hello there, how are you?", "--user", "alice", "--models", "mini").code == 0
    shown = priced("budget", "show", "alice", "--json")
    assert shown.code == 0
    data = shown.json()
    assert isinstance(data, dict) and data["user"] == "alice" and data["next_action"] == "allow"
    windows = {w["window"]: w for w in data["windows"]}
    assert set(windows) == {"daily", "weekly", "monthly"}
    daily = windows["daily"]
    assert daily["limit"] == 5.0 and daily["spent"] == 0.001 and daily["remaining"] == 4.999
    assert daily["pct_used"] == 0.02 and daily["resets_at"].endswith("+00:00")
    listed = priced("budget", "list", "--json").json()
    assert listed == [{"user": "alice", "daily": 5.0, "weekly": 20.0, "monthly": 50.0, "total": None}]
    assert priced("budget", "rm", "alice").code == 0
    gone = priced("budget", "rm", "alice")
    assert gone.code == 1
    assert_one_error_line(gone.stderr)


# "0" is a legitimate limit ("may spend nothing", issue 11); an amount that would round to
# $0 is not, nor one above the documented maximum
@pytest.mark.parametrize("value", ["-1", "0.0000000001", "1e10", "nan", "inf", "abc", ""])
def test_bad_limits_are_refused_and_change_nothing(priced: CliRunner, value: str) -> None:
    run = priced("budget", "set", "bob", "--daily", value)
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert not priced.db.exists()  # refused before the ledger was even opened


def test_blocked_ask_exits_3_with_one_line(priced: CliRunner, server: ReplayServer) -> None:
    priced("budget", "set", "carol", "--daily", "0.0015")
    assert priced("ask", "hello there, how are you?", "--user", "carol", "--models", "mini").code == 0
    before = server.request_count()
    blocked = priced("ask", "hello there, how are you?", "--user", "carol", "--models", "mini")
    assert blocked.code == 3
    assert_one_error_line(blocked.stderr)
    assert "carol's daily budget" in blocked.stderr and "$0.001" in blocked.stderr
    assert server.request_count() == before
    shown = priced("budget", "show", "carol", "--json").json()
    assert isinstance(shown, dict) and shown["next_action"] == "block"


def test_show_for_a_user_without_budget(priced: CliRunner) -> None:
    run = priced("budget", "show", "nobody")
    assert run.code == 0 and "no budget" in run.stderr


def test_sample_tier_hooks(priced: CliRunner, tmp_path: Path, server: ReplayServer) -> None:
    shutil.copy(REPO / "sample_data" / "tier_hooks.py", tmp_path / "tier_hooks.py")
    assert priced.config is not None
    with priced.config.open("a") as fh:
        fh.write('\n[hooks]\non_model_filter = "tier_hooks:models_for_tier"\n')
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer="Maybe.", prompt_tokens=10, completion_tokens=100)
    )
    free = priced("ask", "Explain in detail how tides work.", "--user", "bob", "--json").json()
    pro = priced("ask", "Explain in detail how tides work.", "--user", "alice", "--json").json()
    assert isinstance(free, dict) and isinstance(pro, dict)
    assert free["model"] == "mini" and not free["escalated"]
    assert pro["model"] == "big" and pro["escalated"]


def test_a_killed_process_does_not_hold_its_reservation(priced: CliRunner, server: ReplayServer) -> None:
    # room for one worst-case request ($0.011 with big) but not two
    priced("budget", "set", "hal", "--daily", "0.015")
    server.set_behavior("gpt-4o-mini", ModelBehavior(hang=True))
    proc = priced.popen("ask", "hello there, how are you?", "--user", "hal")
    wait_until(lambda: server.request_count("gpt-4o-mini") == 1)
    assert len(ledger_rows(priced.db, "reservations")) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    server.set_behavior(
        "gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=100)
    )
    run = priced("ask", "hello there, how are you?", "--user", "hal")
    assert run.code == 0, run.stderr  # the dead process's $0.011 no longer counts
    assert ledger_rows(priced.db, "reservations") == []
    # its call in flight does, recorded in its place: 100 tokens at most, at mini's $10/M
    cost = {r["status"]: r["cost_nusd"] for r in ledger_rows(priced.db, "requests")}
    assert cost["interrupted"] == 1_000_000 and set(cost) == {"interrupted", "ok"}


def test_budget_lowered_while_a_request_is_in_flight(priced: CliRunner, server: ReplayServer) -> None:
    priced("budget", "set", "ivy", "--daily", "1")
    server.set_behavior(
        "gpt-4o-mini",
        ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=100, latency_s=1.0),
    )
    proc = priced.popen("ask", "hello there, how are you?", "--user", "ivy", "--models", "mini")
    wait_until(lambda: server.request_count("gpt-4o-mini") == 1)
    assert priced("budget", "set", "ivy", "--daily", "0.0015").code == 0
    assert proc.wait(30) == 0  # the request already admitted completes and is settled
    blocked = priced("ask", "hello there, how are you?", "--user", "ivy", "--models", "mini")
    assert blocked.code == 3  # $0.001 spent + up to $0.001 more would cross $0.0015
    rows = ledger_rows(priced.db, "requests")
    assert [r["status"] for r in rows] == ["ok", "blocked"] and rows[0]["cost_nusd"] == 1_000_000
    assert ledger_rows(priced.db, "reservations") == []


def test_show_includes_the_months_path_against_the_budget(priced: CliRunner) -> None:
    from datetime import UTC, datetime, timedelta

    from cascadeflow_cli.clock import format_ts
    from cascadeflow_cli.ledger.db import open_ledger
    from cascadeflow_cli.ledger.records import RequestRecord

    # three weeks of $1 a day: a $10 monthly budget is certain to be exceeded, $1000 is not
    now = datetime.now(UTC)
    with open_ledger(priced.db) as ledger:
        for day in range(1, 22):
            ts = format_ts(now - timedelta(days=day))
            ledger.record(RequestRecord(id=f"h{day}", ts=ts, user="jo", status="ok", query=None,
                                        answer=None, cost_nusd=1_000_000_000))
    priced("budget", "set", "jo", "--monthly", "10")
    tight = priced("budget", "show", "jo", "--json").json()
    priced("budget", "set", "jo", "--monthly", "1000")
    roomy = priced("budget", "show", "jo", "--json").json()
    assert isinstance(tight, dict) and isinstance(roomy, dict)
    assert tight["outlook"]["window"] == "monthly" and tight["outlook"]["limit"] == 10.0
    assert tight["outlook"]["risk"] > 0.9 and tight["outlook"]["alert"] is True
    assert roomy["outlook"]["risk"] < 0.1 and roomy["outlook"]["alert"] is False
    # the same sentence the screen ends with: it read "at this pace spend spends" (hostile-13)
    assert roomy["outlook"]["message"].startswith("at this pace jo spends $")
    assert tight["outlook"]["message"].startswith("jo is already over") or "at this pace jo spends" in \
        tight["outlook"]["message"]


@pytest.mark.parametrize("name, shown", [("alice\r", "alice\\x0d"), ("b\x1b[2Job", "b\\x1b[2Job"),
                                         ("car\u200bol", "car\\u200bol")],
                         ids=["carriage-return", "escape", "zero-width-space"])
def test_a_budget_an_older_version_took_can_be_listed_escaped_and_removed(
        priced: CliRunner, name: str, shown: str) -> None:
    """hostile-7: a name an older version accepted with a control character could not be
    removed ('the user name holds a control character'), and `budget list` printed it raw
    (a CR hid it, ESC drove the terminal). Today's check still refuses to create it."""
    import sqlite3

    assert priced("budget", "set", "dave", "--daily", "1").code == 0  # makes the ledger
    with sqlite3.connect(priced.db) as conn:  # as the older version wrote it
        conn.execute("insert into budgets (user, daily_nusd) values (?, ?)", [name, 5 * 10**9])
    listed = priced("budget", "list")
    assert listed.code == 0 and shown in listed.stdout and name not in listed.stdout, listed.stdout
    assert {"user": name, "daily": 5.0, "weekly": None, "monthly": None, "total": None} in \
        priced("budget", "list", "--json").json()  # type: ignore[operator]
    refused = priced("budget", "set", name, "--daily", "2")
    assert refused.code == 1
    assert_one_error_line(refused.stderr)
    by_escape = priced("budget", "rm", shown)  # as `budget list` shows it
    assert by_escape.code == 0, by_escape.stderr
    assert shown in by_escape.stderr and name not in by_escape.stderr
    assert [r["user"] for r in ledger_rows(priced.db, "budgets")] == ["dave"]
    assert priced("budget", "set", "x", "--daily", "1").code == 0
    with sqlite3.connect(priced.db) as conn:
        conn.execute("insert into budgets (user, daily_nusd) values (?, ?)", [name, 5 * 10**9])
    exact = priced("budget", "rm", name)  # typed as it is ($'alice\r')
    assert exact.code == 0, exact.stderr
    assert [r["user"] for r in ledger_rows(priced.db, "budgets")] == ["dave", "x"]
    missing = priced("budget", "rm", name)  # gone now: refused as before, for what it holds
    assert missing.code == 1
    assert_one_error_line(missing.stderr)


@pytest.mark.parametrize("name, shown", [("alice\r", "alice\\x0d"), ("b\x1b[2Job", "b\\x1b[2Job"),
                                         ("car\u200bol", "car\\u200bol"), (" eve ", "\\x20eve\\x20")],
                         ids=["carriage-return", "escape", "zero-width-space", "end-spaces"])
def test_a_budget_an_older_version_took_can_be_shown_escaped(priced: CliRunner, name: str,
                                                               shown: str) -> None:
    """`budget show` refused such a name, by its spelling or as it is, and its table's caption
    printed the name raw (a CR hid it, ESC drove the terminal)."""
    import sqlite3

    assert priced("budget", "set", "dave", "--daily", "1").code == 0  # makes the ledger
    with sqlite3.connect(priced.db) as conn:  # as the older version wrote it
        conn.execute("insert into budgets (user, daily_nusd) values (?, ?)", [name, 5 * 10**9])
    for given in (shown, name):
        table = priced("budget", "show", given)
        assert table.code == 0, table.stderr
        assert f"{shown} (user budget" in table.stdout and name not in table.stdout, table.stdout
        assert "$5.00" in table.stdout
        data = priced("budget", "show", given, "--json").json()
        assert isinstance(data, dict) and data["user"] == name and data["source"] == "user"
    assert priced("budget", "show", "dave").code == 0
    refused = priced("budget", "show", "zed\r")  # no such stored name: refused as before
    assert refused.code == 1
    assert_one_error_line(refused.stderr)
