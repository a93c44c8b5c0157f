"""`[budgets.teams.NAME]`: members and limits, strict like the rest of the config, and
`config show` writes them back in a form the parser reads again."""

from __future__ import annotations

from decimal import Decimal

import pytest
import tomli_w

from cascadeflow_cli.config import TeamBudget, config_to_dict, parse_config
from cascadeflow_cli.errors import ConfigError


def test_teams_parse_and_round_trip_through_config_show() -> None:
    config = parse_config('[budgets.teams.backend]\nmembers = ["alice", "bob"]\n'
                          'monthly = 500\ndaily = 20.5\n')
    limits = {"monthly": Decimal("500"), "daily": Decimal("20.5")}
    assert config.budgets.teams == {"backend": TeamBudget(members=("alice", "bob"), limits=limits)}
    again = parse_config(tomli_w.dumps(config_to_dict(config)))
    assert again.budgets.teams == config.budgets.teams


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[budgets.teams.x]\nmembers = []\ndaily = 1\n', "budgets.teams.x.members: must be a non-empty list"),
        ('[budgets.teams.x]\nmembers = ["a"]\n', "budgets.teams.x: give at least one of daily"),
        ('[budgets.teams.x]\nmembers = ["a"]\nhourly = 1\n', "budgets.teams.x.hourly: unknown key"),
        ('[budgets.teams.x]\ndaily = 1\n', "budgets.teams.x.members: must list at least one user"),
        ('[budgets.teams.x]\nmembers = ["a"]\ndaily = -1\n', "budgets.teams.x.daily"),
        ('[budgets]\nteams = 3\n', "budgets.teams: must be a table"),
    ],
)
def test_bad_teams_are_refused_naming_the_key(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert problem in str(err.value)


def test_a_team_name_is_one_name_however_it_is_typed() -> None:
    # "José" composed and decomposed were two teams, each its own limit on the same members (hostile-18)
    config = parse_config('[budgets.teams."Jose\\u0301"]\nmembers = ["Zoe\\u0308"]\ndaily = 1\n')
    team = TeamBudget(members=("Zo\u00eb",), limits={"daily": Decimal(1)})
    assert config.budgets.teams == {"Jos\u00e9": team}
    with pytest.raises(ConfigError) as err:
        parse_config('[budgets.teams."Jos\\u00e9"]\nmembers = ["ann"]\ndaily = 1\n'
                     '[budgets.teams."Jose\\u0301"]\nmembers = ["ann"]\ndaily = 2\n')
    assert "the same team name as budgets.teams.Jos\u00e9" in str(err.value)


@pytest.mark.parametrize(("name", "problem"), [
    ("ops\\u200b", "the team name holds an invisible format character"),
    ("\\u202eops", "the team name holds a bidirectional control character"),
    ("ops\\r", "the team name holds a control character"),
    (" ops", "the team name starts or ends with a space"),
    ("  ", "the team name is empty"),
])
def test_a_team_name_that_would_look_like_another_is_refused(name: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f'[budgets.teams."{name}"]\nmembers = ["ann"]\ndaily = 1\n')
    assert problem in str(err.value) and "budgets.teams." in str(err.value)
