from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cascadeflow_cli.config import (
    config_to_dict,
    find_config,
    load_config,
    parse_config,
    resolve_db_path,
    starter_config,
)
from cascadeflow_cli.errors import ConfigError

VALID = """
[ledger]
timezone = "Europe/Berlin"
store_prompts = false

[[models]]
name = "mini"
model = "openai/gpt-4o-mini"
api_base = "http://127.0.0.1:11434/v1"
input_cost_per_million = 0.15
output_cost_per_million = 0.60
timeout = 30

[[models]]
name = "big"
model = "anthropic/claude-3-5-sonnet-latest"
api_key_env = "ANTHROPIC_API_KEY"

[cascade]
models = ["mini", "big"]
quality_threshold = 0.75

[budgets]
mode = "degrade"
degraded_models = ["mini"]
[budgets.default]
daily = 5.0

[domains]
code = ["mini", "big"]

[hooks]
on_budget_check = "my_tiers:check"
"""


def test_valid_config_parses() -> None:
    config = parse_config(VALID)
    assert [m.name for m in config.chain()] == ["mini", "big"]
    mini = config.models["mini"]
    assert mini.input_cost_per_million == Decimal("0.15")  # exact, not 0.1499999...
    assert mini.timeout == 30 and mini.wire_model == "gpt-4o-mini"
    assert config.ledger.timezone == "Europe/Berlin" and config.ledger.store_prompts is False
    assert config.cascade.quality_threshold == 0.75
    assert config.budgets.mode == "degrade" and config.budgets.default == {"daily": Decimal("5.0")}
    assert config.domains["code"] == ("mini", "big")
    assert config.hooks["on_budget_check"] == "my_tiers:check"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[cascade\nmodels = 1", "invalid TOML.*line 1"),
        ("[ledger]\npth = 'x'", r"ledger\.pth: unknown key"),
        ("colour = 1", "colour: unknown key"),
        (
            "[[models]]\nname='a'\nmodel='openai/x'\ninput_cost_per_million=-1\noutput_cost_per_million=1",
            r"models\.a\.input_cost_per_million: must be a number >= 0",
        ),
        (
            "[[models]]\nname='a'\nmodel='openai/x'\n[cascade]\nmodels=['a','ghost']",
            r"cascade\.models: names undefined model 'ghost'",
        ),
        (
            "[[models]]\nname='a'\nmodel='openai/x'\n[cascade]\nmodels=['a']\n[domains]\ncode=['b']",
            r"domains\.code: names undefined",
        ),
        ("[ledger]\ntimezone='Mars/Olympus'", "unknown IANA time zone"),
        ("[budgets]\nmode='sometimes'", r"budgets\.mode: must be one of"),
        ("[budgets]\nwarn_at=0.95\ndegrade_at=0.9", "warn_at <= degrade_at <= block_at"),
        ("[[models]]\nname='a'\nmodel='openai/x'\ninput_cost_per_million=1", "set both"),
        ("[[models]]\nmodel='openai/x'", "needs both 'name' and 'model'"),
        ("[[models]]\nname='a'\nmodel='x'\n[[models]]\nname='a'\nmodel='y'", "defined twice"),
        ("[cascade]\nquality_threshold=1.5", r"quality_threshold: must be a number between 0 and 1"),
        ("[[models]]\nname='a'\nmodel='openai/x'\ntimeout=nan", "timeout: must be"),
        ("[[models]]\nname='a'\nmodel='openai/x'\ntimeout=1e12",
         "timeout: must be a number between 0.001 and 86400"),
        # token limits a ledger column cannot hold (hostile-13)
        ("[cascade]\nmax_tokens=99999999999999999",
         r"cascade\.max_tokens: must be a whole number between 1 and 1,000,000,000,000"),
        # a fraction was cut to a whole number without a word (hostile-13)
        ("[cascade]\nmax_tokens=10.5",
         r"cascade\.max_tokens: must be a whole number between 1 and .*, got 10\.5"),
        ("[[models]]\nname='a'\nmodel='openai/x'\nmax_retries=1.5",
         r"max_retries: must be a whole number between 0 and 20, got 1\.5"),
        ("[[models]]\nname='a'\nmodel='openai/x'\nmax_output_tokens=99.9",
         "max_output_tokens: must be a whole"),
        # a bad telemetry endpoint passed `config show` and failed only when spans were sent
        ("[telemetry]\nendpoint='localhost:4318'",
         r"telemetry\.endpoint: 'localhost:4318' is not an http:// or https:// URL with a host"),
        ("[telemetry]\nendpoint='ftp://collector'", r"telemetry\.endpoint: 'ftp://collector' is not an http"),
        ("[[models]]\nname='a'\nmodel='openai/x'\nmax_output_tokens=1e15", "max_output_tokens: must be"),
        # a model name with a line break split `cascade models`' row and reached serve's headers
        ('[[models]]\nname="a\\nb"\nmodel="openai/x"', r"models\[0\]\.name: the model name holds a control"),
        ('[[models]]\nname=" a"\nmodel="openai/x"', r"models\[0\]\.name: the model name starts or ends"),
        ('[domains]\n"a\\nb" = ["mini"]', r"domains\.'a\\nb': the domain name holds a control"),
    ],
)
def test_invalid_config_names_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "cascadeflow.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config(None, {}) == (None, False)
    user = tmp_path / "home" / ".config" / "cascadeflow" / "cascadeflow.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config(None, {}) == (user, False)
    local = tmp_path / "cascadeflow.toml"
    local.write_text("")
    assert find_config(None, {})[0] == local
    assert find_config(None, {"CASCADE_CONFIG": "/x/env.toml"}) == (Path("/x/env.toml"), True)
    assert find_config(Path("/x/flag.toml"), {"CASCADE_CONFIG": "/x/env.toml"}) == (
        Path("/x/flag.toml"),
        True,
    )


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_db_path_order(tmp_path: Path) -> None:
    config = parse_config("[ledger]\npath = 'rel/ledger.db'", tmp_path / "cascadeflow.toml")
    assert config.ledger.path == tmp_path / "rel" / "ledger.db"  # relative to the config file
    assert resolve_db_path(None, config, {}) == tmp_path / "rel" / "ledger.db"
    assert resolve_db_path(None, config, {"CASCADE_DB": "/e.db"}) == Path("/e.db")
    assert resolve_db_path(Path("/f.db"), config, {"CASCADE_DB": "/e.db"}) == Path("/f.db")
    default = resolve_db_path(None, parse_config(""), {})
    assert default.name == "ledger.db" and "cascadeflow" in str(default)


def test_starter_config_is_commented_and_valid() -> None:
    text = starter_config()
    assert text.count("\n# ") >= 3
    config = parse_config(text)
    assert config.cascade.models == ("mini", "big")


def test_effective_config_round_trips_through_toml() -> None:
    import tomli_w

    config = parse_config(VALID)
    again = parse_config(tomli_w.dumps(config_to_dict(config)))
    assert again.models == config.models and again.cascade == config.cascade
    assert again.budgets == config.budgets and again.domains == config.domains


def test_quality_section(tmp_path: Path) -> None:
    path = tmp_path / "cascadeflow.toml"
    config = parse_config('[quality]\ncalibration = "cal/calibration.json"\ntarget_quality = 0.9\n', path)
    assert config.quality.calibration == tmp_path / "cal" / "calibration.json"  # relative to the file
    assert config.quality.target_quality == 0.9
    assert parse_config("", path).quality.calibration is None
    assert parse_config("", path).quality.target_quality is None  # the calibration's own target


@pytest.mark.parametrize(("text", "expected"), [
    ("[quality]\ntarget_quality = 1.5", "quality.target_quality"),
    ("[quality]\ntarget_quality = 'high'", "quality.target_quality"),
    ("[quality]\ncalibration = 3", "quality.calibration"),
    ("[quality]\nshadow_rate = 2", "quality.shadow_rate"),
    ("[quality]\nlogprobs = 'yes'", "quality.logprobs"),
    ("[quality]\nconsistency_samples = 0", "quality.consistency_samples"),
    ("[quality]\ncalibraton = 'x.json'", "quality.calibraton"),
])
def test_bad_quality_keys_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config(text, tmp_path / "cascadeflow.toml")


def test_a_config_saved_with_a_bom_and_crlf_loads(tmp_path: Path) -> None:
    """hostile-4: Notepad's UTF-8 BOM made the whole file "invalid TOML" at line 1."""
    path = tmp_path / "cascadeflow.toml"
    path.write_bytes(b'\xef\xbb\xbf[ledger]\r\ntimezone = "Europe/Berlin"\r\n')
    assert load_config(path).ledger.timezone == "Europe/Berlin"


def test_a_key_written_into_the_config_is_a_readable_error(tmp_path: Path) -> None:
    """hostile-4: `api_key = "sk-..."` came out as "models[0].api_key: [redacted] key
    (allowed: ...)": the redactor took "unknown" for the key's value."""
    from cascadeflow_cli.redact import redact

    path = tmp_path / "cascadeflow.toml"
    path.write_text('[[models]]\nname = "a"\nmodel = "openai/x"\napi_key = "sk-CFGSECRET11223344"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = redact(str(info.value))
    assert "api_key is not a setting" in message and "api_key_env" in message
    assert "[redacted]" not in message and "sk-CFG" not in message


def test_a_provider_url_with_a_user_or_password_is_refused(tmp_path: Path) -> None:
    """hostile-4: `api_base = "http://user:KEY@host/v1"` was looked up whole as a host
    name ("Name or service not known"); it is refused, without echoing the URL."""
    path = tmp_path / "cascadeflow.toml"
    path.write_text('[[models]]\nname = "a"\nmodel = "openai/x"\n'
                    'api_base = "http://user:hunter2pass@127.0.0.1:9/v1"\n')
    with pytest.raises(ConfigError, match=r"models\.a\.api_base: must not hold a user") as info:
        load_config(path)
    assert "hunter2pass" not in str(info.value)
