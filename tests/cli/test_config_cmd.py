"""`cascade config path|show|init` end to end."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ReplayServer
from tests.cli.support import run_together
from tests.conftest import CliRunner, assert_one_error_line


def test_path_prints_the_config_named_by_the_environment(cli: CliRunner, config_file: Path,
                                                         tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    run, flag = run_together(cli, ["config", "path"], ["--config", str(other), "config", "path"])
    assert run.code == 0, run.stderr
    assert run.stdout == f"{config_file}\n"
    # the flag wins over the variable
    assert flag.code == 0 and flag.stdout == f"{other}\n"


def test_init_writes_a_config_that_show_reads(cli: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "new" / "cascadeflow.toml"
    run = cli("config", "init", "--path", str(target))
    assert run.code == 0, run.stderr
    assert target.is_file() and str(target) in run.stdout
    shown = cli("--config", str(target), "config", "show", "--json")
    assert shown.code == 0, shown.stderr
    data = shown.json()
    assert isinstance(data, dict)
    # the starter's models, not the ones of $CASCADE_CONFIG (which point at the test server)
    assert [(m["name"], m["model"]) for m in data["models"]] == [
        ("mini", "openai/gpt-4o-mini"), ("big", "openai/gpt-4o")]
    assert all("api_base" not in m and m["api_key_env"] == "OPENAI_API_KEY"
               for m in data["models"])
    assert data["cascade"]["models"] == ["mini", "big"]
    assert data["ledger"]["path"] == str(cli.db)


def test_init_refuses_to_overwrite_without_force(cli: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "mine.toml"
    target.write_text("# my own settings\n", encoding="utf-8")
    run = cli("config", "init", "--path", str(target))
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert str(target) in run.stderr and "--force" in run.stderr
    assert target.read_text(encoding="utf-8") == "# my own settings\n"

    forced = cli("config", "init", "--path", str(target), "--force")
    assert forced.code == 0, forced.stderr
    assert [m["name"] for m in tomllib.loads(target.read_text(encoding="utf-8"))["models"]] == [
        "mini", "big"]


def test_init_refuses_a_fifo_it_would_wait_on_for_ever(cli: CliRunner, tmp_path: Path) -> None:
    # found by tests/cli/test_argv_fuzz.py: `--config FIFO config init --force` opened the FIFO
    # for writing, which blocks until someone reads it
    import os

    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    for args in (["--config", str(fifo), "config", "init", "--force"], ["config", "init", "--path", str(fifo),
                                                                          "--force"]):
        run = cli(*args)
        assert run.code == 1, run.stderr
        assert_one_error_line(run.stderr)
        assert "not a regular file" in run.stderr


def test_show_prints_toml_of_the_effective_config(cli: CliRunner, tmp_path: Path,
                                                  server: ReplayServer) -> None:
    run, original = run_together(cli, ["config", "show"], ["config", "show", "--json"])
    assert run.code == 0, run.stderr
    data = tomllib.loads(run.stdout)
    assert [m["name"] for m in data["models"]] == ["mini", "big"]
    assert {m["api_base"] for m in data["models"]} == {server.base_url}
    assert {m["retry_delay"] for m in data["models"]} == {0.01}
    assert data["ledger"]["path"] == str(cli.db)
    assert data["cascade"]["models"] == ["mini", "big"]

    # what `show` prints is itself a config that means the same thing
    copy = tmp_path / "shown.toml"
    copy.write_text(run.stdout, encoding="utf-8")
    again = cli("--config", str(copy), "config", "show", "--json")
    assert (original.code, again.code) == (0, 0), original.stderr + again.stderr
    assert json.loads(again.stdout) == json.loads(original.stdout)


def test_show_with_a_broken_config(cli: CliRunner, config_file: Path) -> None:
    config_file.write_text("[cascade]\nmodels = []\n", encoding="utf-8")
    run = cli("config", "show")
    assert run.code == 1
    assert_one_error_line(run.stderr)
    assert str(config_file) in run.stderr and "cascade.models" in run.stderr


@pytest.mark.parametrize("as_json", [False, True], ids=["toml", "json"])
def test_show_masks_a_key_written_into_a_url(tmp_path: Path, as_json: bool) -> None:
    """hostile-4: `config show` printed a provider URL's ?api_key=KEY and the collector's
    user:PASSWORD@ as written, while the ledger URL's password was already masked."""
    path = tmp_path / "cascadeflow.toml"
    path.write_text(
        '[[models]]\nname = "a"\nmodel = "openai/x"\n'
        'api_base = "http://127.0.0.1:9/v1?api_key=sk-QUERYSECRET55443322"\n'
        '[cascade]\nmodels = ["a"]\n'
        '[telemetry]\nendpoint = "http://otel:collectorpass@127.0.0.1:4318"\n',
        encoding="utf-8",
    )
    cli = CliRunner(tmp_path, path, tmp_path / "ledger.db")
    run = cli("config", "show", *(["--json"] if as_json else []))
    assert run.code == 0, run.stderr
    for secret in ("QUERYSECRET", "collectorpass"):
        assert secret not in run.stdout
    assert "http://127.0.0.1:9/v1?api_key=[redacted]" in run.stdout
    assert "http://otel:***@127.0.0.1:4318" in run.stdout
