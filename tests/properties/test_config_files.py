"""Config files: a valid one reads back as written (`config show --json`); a broken one is
one line naming the file, exit 1, before the ledger is touched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from tests.properties.conftest import BadInputTally
from tests.properties.harness import fingerprint, run, scratch, seeded_ledger

pytestmark = pytest.mark.slow

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]
model_names = st.from_regex(r"[a-z][a-z0-9_-]{0,9}", fullmatch=True)
prices = st.decimals(min_value=0, max_value=1000, places=4).map(float)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(model_names, min_size=1, max_size=4, unique=True))
    models = []
    for name in names:
        model: dict[str, Any] = {"name": name, "model": "openai/" + draw(model_names)}
        if draw(st.booleans()):
            model["input_cost_per_million"] = draw(prices)
            model["output_cost_per_million"] = draw(prices)
        if draw(st.booleans()):
            model["timeout"] = draw(st.integers(1, 600))
        models.append(model)
    chain = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    config: dict[str, Any] = {
        "ledger": {"timezone": draw(st.sampled_from(ZONES)), "store_prompts": draw(st.booleans())},
        "models": models,
        "cascade": {"models": chain, "quality_threshold": draw(st.floats(0, 1))},
        "budgets": {
            "mode": draw(st.sampled_from(["warn", "degrade", "block"])),
            "default": {"daily": draw(st.decimals(min_value="0.01", max_value=1000, places=2).map(float))},
        },
    }
    if draw(st.booleans()):
        config["domains"] = {"code": draw(st.lists(st.sampled_from(names), min_size=1, unique=True))}
    return config


@given(config=configs())
def test_a_valid_config_reads_back_as_written(config: dict[str, Any]) -> None:
    with scratch() as tmp:
        path = Path(tmp) / "cascadeflow.toml"
        path.write_text(tomli_w.dumps(config), encoding="utf-8")
        result = run("--config", str(path), "config", "show", "--json")
        assert result.code == 0, result.stderr
        shown = json.loads(result.stdout)
    assert shown["ledger"]["timezone"] == config["ledger"]["timezone"]
    assert shown["ledger"]["store_prompts"] == config["ledger"]["store_prompts"]
    assert [m["name"] for m in shown["models"]] == [m["name"] for m in config["models"]]
    assert [m["model"] for m in shown["models"]] == [m["model"] for m in config["models"]]
    assert shown["cascade"]["models"] == config["cascade"]["models"]
    assert shown["cascade"]["quality_threshold"] == pytest.approx(config["cascade"]["quality_threshold"])
    assert shown["budgets"]["mode"] == config["budgets"]["mode"]
    assert shown["budgets"]["default"]["daily"] == pytest.approx(config["budgets"]["default"]["daily"])
    for given_model, shown_model in zip(config["models"], shown["models"], strict=True):
        for key in ("input_cost_per_million", "timeout"):
            if key in given_model:
                assert shown_model[key] == pytest.approx(given_model[key])
    assert shown.get("domains", {}) == config.get("domains", {})


def _break(config: dict[str, Any], how: str, value: Any) -> dict[str, Any]:
    """One thing wrong with an otherwise valid config."""
    broken = json.loads(json.dumps(config))
    if how == "unknown top-level key":
        broken["colour"] = value
    elif how == "unknown model key":
        broken["models"][0]["temperature_typo"] = value
    elif how == "chain names a missing model":
        broken["cascade"]["models"] = [*broken["cascade"]["models"], "no-such-model"]
    elif how == "bad timezone":
        broken["ledger"]["timezone"] = value if isinstance(value, str) else "Mars/Olympus"
    elif how == "wrong type":
        broken["cascade"]["quality_threshold"] = "high" if isinstance(value, int | float) else value
    elif how == "out of range":
        broken["cascade"]["quality_threshold"] = 1.5
    elif how == "negative timeout":
        broken["models"][0]["timeout"] = -abs(int(value) if isinstance(value, int) else 5) - 1
    elif how == "bad mode":
        broken["budgets"]["mode"] = "panic"
    elif how == "empty models":
        broken["models"] = []
    elif how == "duplicate model name":
        broken["models"].append(dict(broken["models"][0]))
    elif how == "negative price":
        broken["models"][0]["input_cost_per_million"] = -1.0
    elif how == "models not a list":
        broken["models"] = {"name": "x"}
    return broken


BREAKS = [
    "unknown top-level key",
    "unknown model key",
    "chain names a missing model",
    "bad timezone",
    "wrong type",
    "out of range",
    "negative timeout",
    "bad mode",
    "empty models",
    "duplicate model name",
    "negative price",
    "models not a list",
]
values = st.one_of(
    st.integers(-100, 100), st.text(max_size=8).filter(lambda s: s not in ZONES), st.booleans()
)


@pytest.fixture(scope="module")
def ledger() -> Iterator[Path]:
    with seeded_ledger() as db:
        yield db


def _refused(ledger: Path, body: bytes, tally: BadInputTally, kind: str) -> str:
    with scratch() as tmp:
        path = Path(tmp) / "cascadeflow.toml"
        path.write_bytes(body)
        before = fingerprint(ledger)
        result = run("--config", str(path), "--db", str(ledger), "logs")
        tally.record(kind, result.stderr)
        line = result.one_error_line()
        assert str(path) in line, line
        assert fingerprint(ledger) == before
        return line


@given(config=configs(), how=st.sampled_from(BREAKS), value=values)
def test_a_broken_config_is_one_line_naming_the_file(
    ledger: Path, config: dict[str, Any], how: str, value: Any, tally: BadInputTally
) -> None:
    _refused(ledger, tomli_w.dumps(_break(config, how, value)).encode(), tally, "config files")


@given(config=configs(), cut=st.integers(1, 400), noise=st.binary(min_size=1, max_size=8))
def test_a_mangled_config_file_is_one_line(
    ledger: Path, config: dict[str, Any], cut: int, noise: bytes, tally: BadInputTally
) -> None:
    """Cut short and spliced with arbitrary bytes: refused, or (rarely) still a valid config."""
    text = tomli_w.dumps(config).encode()
    body = text[: cut % len(text)] + noise + text[cut % len(text) :]
    with scratch() as tmp:
        path = Path(tmp) / "cascadeflow.toml"
        path.write_bytes(body)
        result = run("--config", str(path), "--db", str(ledger), "logs")
    if result.code != 0:
        tally.record("config files", result.stderr)
        assert str(path) in result.one_error_line()
