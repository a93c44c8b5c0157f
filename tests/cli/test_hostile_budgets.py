"""Budgets under hostile settings (hostile-25), through the real CLI and the replay server:
a degraded chain of unknown price, and team budgets in `budget show`."""

from __future__ import annotations

from pathlib import Path

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import rows
from tests.conftest import GOOD_ANSWER, CliRunner, assert_one_error_line, config_text

PRICES = "input_cost_per_million = 1.0\noutput_cost_per_million = 1.0\n"
QUERY = "What is the capital of France?"


def _runner(tmp_path: Path, server: ReplayServer, extra_models: str, budgets: str) -> CliRunner:
    for model in ("gpt-4o-mini", "gpt-4o", "odd-model"):
        server.set_behavior(model, ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=10, completion_tokens=10))
    path = tmp_path / "cascadeflow.toml"
    text = config_text(server.base_url, mini_extra=PRICES, big_extra=PRICES, extra_models=extra_models)
    path.write_text(text + budgets)
    return CliRunner(tmp_path, path, tmp_path / "ledger.db")


def test_an_unpriced_degraded_chain_is_no_cheaper_chain(tmp_path: Path, server: ReplayServer) -> None:
    """Every request of a user with a budget, however far under it, failed 'no known price
    for model odd' (exit 1) while `budget show` said 'next request → allow'. The degraded
    chain's cost cannot be reserved (nor counted as $0): degrade mode has no cheaper chain
    then, so a request that fits runs on the full chain, one that does not is blocked."""
    odd = f'[[models]]\nname = "odd"\nmodel = "openai/odd-model"\napi_base = "{server.base_url}"\n'
    cli = _runner(tmp_path, server, odd, '\n[budgets]\nmode = "degrade"\ndegraded_models = ["odd"]\n')
    assert cli("budget", "set", "roomy", "--daily", "100").code == 0
    assert cli("budget", "set", "tight", "--daily", "0.001").code == 0  # under the chain's worst case
    for user, action in (("roomy", "allow"), ("tight", "block")):
        shown = cli("budget", "show", user, "--json")
        assert shown.code == 0, shown.stderr
        assert shown.json()["next_action"] == action  # type: ignore[index]
    ran = cli("ask", QUERY, "--user", "roomy", "--json")
    assert ran.code == 0, ran.stderr
    assert ran.json()["model"] in ("mini", "big")  # type: ignore[index]
    blocked = cli("ask", QUERY, "--user", "tight")
    assert blocked.code == 3, blocked.stderr
    assert_one_error_line(blocked.stderr)
    assert "tight's daily budget" in blocked.stderr
    assert server.request_count("odd-model") == 0
    assert [r["status"] for r in rows(cli.db, "requests")] == ["ok", "blocked"]
    assert rows(cli.db, "reservations") == []


def test_budget_show_counts_the_users_teams(tmp_path: Path, server: ReplayServer) -> None:
    """A team at its limit blocked the member's next request (exit 3) while `budget show`
    listed the member's own windows only and said 'next request → allow'; a member with no
    budget of their own was told 'has no budget: requests are allowed'."""
    team = '\n[budgets]\nmode = "block"\n[budgets.teams.red]\nmembers = ["alice", "bob"]\ndaily = 0.0001\n'
    cli = _runner(tmp_path, server, "", team)
    assert cli("budget", "set", "alice", "--daily", "100").code == 0
    for user in ("alice", "bob"):
        shown = cli("budget", "show", user, "--json")
        assert shown.code == 0, shown.stderr
        data = shown.json()
        assert isinstance(data, dict)
        assert data["next_action"] == "block" and "team red's daily budget" in data["next_message"]
        teams = [(w["team"], w["window"], w["limit"]) for w in data["team_windows"]]
        assert teams == [("red", "daily", 0.0001)]
        assert [w["window"] for w in data["windows"]] == (["daily"] if user == "alice" else [])
        human = cli("budget", "show", user)
        assert human.code == 0, human.stderr
        assert "daily (team red)" in human.stdout and "next request → block" in human.stdout
        asked = cli("ask", QUERY, "--user", user)
        assert asked.code == 3 and "team red's daily budget" in asked.stderr, asked.stderr
    assert server.request_count() == 0
    outsider = cli("budget", "show", "carol")
    assert outsider.code == 0 and "has no budget" in outsider.stderr


def test_a_limit_is_stored_down_to_whole_nano_dollars_never_up(tmp_path: Path, server: ReplayServer) -> None:
    """Rounded half-even, $0.0000000015 was stored as $0.000000002 (a limit above the one
    typed) while `budget set` echoed $0.0000000015, and $0.0000000006 became $0.000000001."""
    cli = _runner(tmp_path, server, "", '\n[budgets]\nmode = "block"\n')
    for typed, stored in (("0.0000000015", 1e-9), ("0.0000000025", 2e-9), ("1e-9", 1e-9), ("0", 0.0)):
        done = cli("budget", "set", "ann", "--daily", typed)
        assert done.code == 0, done.stderr
        assert cli("budget", "show", "ann", "--json").json()["windows"][0]["limit"] == stored  # type: ignore[index]
    refused = cli("budget", "set", "ann", "--daily", "0.0000000006")
    assert refused.code == 1 and "smallest amount" in refused.stderr
    assert_one_error_line(refused.stderr)
    assert cli("budget", "show", "ann", "--json").json()["windows"][0]["limit"] == 0.0  # type: ignore[index]
