"""Startup: `cascade --help` must not pay for the heavy libraries, and both entry points
work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.support import COMMANDS

HEAVY = ("litellm", "httpx", "numpy", "sqlite_utils", "openai", "opentelemetry", "psycopg", "starlette")


def python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


def heavy_loaded_after(code: str, tmp_path: Path) -> list[str]:
    probe = (f"import sys, json\n{code}\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))")
    proc = python(probe, tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_importing_the_app_imports_no_heavy_library(tmp_path: Path) -> None:
    assert heavy_loaded_after("import cascadeflow_cli.cli.app", tmp_path) == []


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    code = ("from cascadeflow_cli.cli.app import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code")
    assert heavy_loaded_after(code, tmp_path) == []


def test_opening_the_ledger_imports_no_heavy_library(tmp_path: Path) -> None:
    """Ledger commands pay for no library: the ledger is sqlite3 with ledger/sqlite_conn.py."""
    assert heavy_loaded_after(
        "from pathlib import Path\nfrom cascadeflow_cli.ledger.db import open_ledger\n"
        "open_ledger(Path('ledger.db')).close()", tmp_path) == []


def test_the_probe_does_see_heavy_imports(tmp_path: Path) -> None:
    """The checks above are not vacuous: the probe does see a heavy library imported."""
    assert heavy_loaded_after("import numpy", tmp_path) == ["numpy"]


@pytest.mark.parametrize("command", [
    [str(Path(sys.executable).parent / "cascade")],
    [sys.executable, "-m", "cascadeflow_cli"],
], ids=["console-script", "python-m"])
def test_help_lists_the_commands(command: list[str], tmp_path: Path) -> None:
    proc = subprocess.run([*command, "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: cascade")
    listed = proc.stdout.split("Commands:", 1)[1].split()
    for name in COMMANDS:
        assert name in listed
    assert proc.stderr == ""


def test_no_arguments_shows_usage_not_an_internal_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "cascadeflow_cli"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert "Usage: cascade" in out and all(name in out for name in COMMANDS)
    assert "unexpected" not in out and "--debug for a traceback" not in out, out
    assert proc.returncode in (0, 1)


def test_a_command_module_imports_on_its_own(tmp_path: Path) -> None:
    proc = python("import cascadeflow_cli.cli.demo", tmp_path)
    assert proc.returncode == 0, proc.stderr


_SIGINT_WHILE_TYPER_LOADS = """
import os, signal, sys
class Finder:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, while typer loads
        return None
sys.meta_path.insert(0, Finder())
"""


def _console_script() -> str:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    module, func = pyproject["project"]["scripts"]["cascade"].split(":")
    return f"from {module} import {func}\nsys.exit({func}())"


@pytest.mark.parametrize("start", [
    _console_script(), "import runpy\nrunpy.run_module('cascadeflow_cli', run_name='__main__')",
], ids=["console-script", "python-m"])
def test_ctrl_c_while_the_modules_load_is_one_line_and_exit_130(start: str, tmp_path: Path) -> None:
    # before main() had its handlers: a 20-line KeyboardInterrupt traceback, exit 1 or -2
    proc = python(_SIGINT_WHILE_TYPER_LOADS + start + "\n", tmp_path)
    assert (proc.returncode, proc.stderr, proc.stdout) == (130, "error: interrupted\n", "")


def _our_traceback(stderr: str) -> bool:
    import os

    """A traceback with a frame in our own files (the interpreter's start, site, and the
    import machinery locating our first module are before any line of ours can guard)."""
    if "Fatal Python error: init_import_site" in stderr:  # site and the .pth files: Python's
        return False
    return "Traceback" in stderr and f"{os.sep}cascadeflow_cli{os.sep}" in stderr  # a frame of ours


def test_ctrl_c_at_any_moment_of_the_start_is_one_line_and_exit_130(tmp_path: Path) -> None:
    # a real SIGINT at 0 to 0.3 s into `cascade --help`: once the imports were guarded
    # (hostile-24), app.main still built the command tree (~20 ms) before its own try
    import os
    import signal
    import time

    script = str(Path(sys.executable).parent / "cascade")
    interrupted = 0
    for step in range(61):
        proc = subprocess.Popen([script, "--help"], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "80"})
        time.sleep(step * 0.005)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert not _our_traceback(err), (step * 0.005, proc.returncode, err)
        if "init_import_site" in err:
            continue
        if proc.returncode == 130:
            assert err == "error: interrupted\n" and out == "", (step * 0.005, err)
            interrupted += 1
        else:  # before the interpreter's handler (-2), or --help already done (0)
            assert proc.returncode in (0, -signal.SIGINT), (step * 0.005, proc.returncode, err)
    assert interrupted > 0  # not vacuous: some signals did land in our code
