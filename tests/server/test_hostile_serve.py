"""`cascade serve` itself against bad settings: one line and exit 1, never a worker's
traceback, never a supervisor respawning failing workers forever."""

from __future__ import annotations

import json
import subprocess

import pytest

from cascadeflow_cli.server import ServeSettings, factory
from tests.conftest import CliRunner, assert_one_error_line


@pytest.mark.parametrize("workers", ["1", "3"])
def test_a_bad_telemetry_setting_fails_before_listening_whatever_the_workers(
    cli: CliRunner, workers: str
) -> None:
    # with --workers 3 it said "listening on", then each worker printed a traceback, and
    # uvicorn's supervisor started them again, forever
    proc = cli.popen("serve", "--port", "0", "--workers", workers, OTEL_EXPORTER_OTLP_ENDPOINT="notaurl")
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"still running: {err[-2000:]}") from None
    assert proc.returncode == 1, err
    assert_one_error_line(err)
    assert err.startswith("error: telemetry endpoint 'notaurl") and "Traceback" not in err


def test_a_worker_that_cannot_start_says_one_line_and_stops_the_supervisor(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # what the parent checked may have gone when a worker starts (the config deleted, the
    # database down): exit code 3 is uvicorn's "failed to start", which stops the parent
    missing = f"{tmp_path}/gone.toml"
    settings = ServeSettings(missing, f"{tmp_path}/l.db")
    monkeypatch.setenv("CASCADE_SERVE_SETTINGS", json.dumps(settings.__dict__))
    with pytest.raises(SystemExit) as stopped:
        factory()
    assert stopped.value.code == 3
    err = capsys.readouterr().err
    assert_one_error_line(err)
    assert err.startswith("error: ") and "gone.toml" in err
