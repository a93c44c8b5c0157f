"""`cascade models`: configured models, prices per million and where they came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.cli.support import QUERY, rows, run_together, stderr_lines
from tests.conftest import GOOD_ANSWER, CliRunner, config_text


def by_name(run_json: object) -> dict[str, dict[str, Any]]:
    assert isinstance(run_json, dict)
    return {m["name"]: m for m in run_json["models"]}


def test_prices_from_litellm(cli: CliRunner) -> None:
    run = cli("models", "--json")
    assert run.code == 0, run.stderr
    data = run.json()
    assert isinstance(data, dict) and data["chains"]["cascade"] == ["mini", "big"]
    models = by_name(data)
    assert set(models) == {"mini", "big"}
    assert models["mini"]["model"] == "openai/gpt-4o-mini"
    assert (models["mini"]["input_cost_per_million"],
            models["mini"]["output_cost_per_million"]) == (0.15, 0.6)
    assert (models["big"]["input_cost_per_million"],
            models["big"]["output_cost_per_million"]) == (2.5, 10.0)
    assert {m["price_source"] for m in models.values()} == {"litellm"}


def test_config_price_override(cli: CliRunner, tmp_path: Path, server: ReplayServer) -> None:
    config = tmp_path / "priced.toml"
    config.write_text(config_text(server.base_url, mini_extra="input_cost_per_million = 1.25\n"
                                                              "output_cost_per_million = 5"),
                      encoding="utf-8")
    models = by_name(cli("models", "--json", CASCADE_CONFIG=str(config)).json())
    assert models["mini"]["price_source"] == "config"
    assert (models["mini"]["input_cost_per_million"],
            models["mini"]["output_cost_per_million"]) == (1.25, 5.0)
    assert models["big"]["price_source"] == "litellm"

    # and the override is what a request is charged: 1000 * 1.25e-6 + 1000 * 5e-6
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, prompt_tokens=1000,
                                                     completion_tokens=1000))
    run = cli("ask", QUERY, "--json", CASCADE_CONFIG=str(config))
    assert run.code == 0, run.stderr
    [req] = rows(cli.db, "requests")
    assert req["cost_nusd"] == 6_250_000
    [call] = rows(cli.db, "calls")
    assert call["cost_source"] == "config"


def test_unknown_model_is_listed_with_a_note(cli: CliRunner, tmp_path: Path,
                                             server: ReplayServer) -> None:
    mystery = '[[models]]\nname = "mystery"\nmodel = "openai/no-such-model-xyz"\n'
    config = tmp_path / "mystery.toml"
    config.write_text(config_text(server.base_url, extra_models=mystery), encoding="utf-8")
    run, human = run_together(cli, ["models", "--json"], ["models"], CASCADE_CONFIG=str(config),
                              COLUMNS="200")
    assert run.code == 0, run.stderr
    models = by_name(run.json())
    assert models["mystery"]["price_source"] == "unknown"
    assert models["mystery"]["input_cost_per_million"] is None
    assert models["mini"]["price_source"] == "litellm"

    assert human.code == 0, human.stderr
    assert "mystery" in human.stdout and "unknown" in human.stdout
    [note] = stderr_lines(human.stderr)
    assert "unknown price" in note and "input_cost_per_million" in note
    assert not note.startswith("error")
