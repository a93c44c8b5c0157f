"""Shared fixtures: a real loopback OpenAI-compatible server, real config files, a real
ledger file, and the real `cascade` command in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cascadeflow_cli.replay.server import ReplayServer
from tests import forkserver

pytest_plugins = ["tests.pg_fixtures"]  # pg_server, pg_url, ledger_url (both backends)


@pytest.hookimpl(optionalhook=True)  # without xdist (-p no:xdist) no one calls it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for `-n auto` (pyproject's addopts): two per core. Most of a test's time is
    spent waiting (on a `cascade` child, a loopback server's latency, a PostgreSQL restart),
    not computing: on this 2-core machine the suite took 317 s with 2 workers and 199 s
    with 4 (2026-12-05, load ~1)."""
    return 2 * (os.cpu_count() or 1)

FIXTURES = Path(__file__).parent / "fixtures"  # small committed inputs

GOOD_ANSWER = (
    "Paris is the capital of France. It has been the seat of the French government for "
    "centuries and is the country's largest city."
)


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see a developer's keys, config or ledger."""
    for var in ("OPENAI_API_KEY", "CASCADE_CONFIG", "CASCADE_DB", "CASCADE_USER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / ".local" / "share"))


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    srv = ReplayServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def config_text(
    base_url: str,
    *,
    extra_models: str = "",
    extra: str = "",
    chain: str = '["mini", "big"]',
    mini_extra: str = "",
    big_extra: str = "",
) -> str:
    return f"""
[[models]]
name = "mini"
model = "openai/gpt-4o-mini"
api_base = "{base_url}"
retry_delay = 0.01
timeout = 5
{mini_extra}

[[models]]
name = "big"
model = "openai/gpt-4o"
api_base = "{base_url}"
retry_delay = 0.01
timeout = 5
{big_extra}
{extra_models}

[cascade]
models = {chain}
{extra}
"""


@pytest.fixture
def config_file(tmp_path: Path, server: ReplayServer) -> Path:
    path = tmp_path / "cascadeflow.toml"
    path.write_text(config_text(server.base_url), encoding="utf-8")
    return path


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


@pytest.fixture
def cli(tmp_path: Path, config_file: Path) -> Iterator[CliRunner]:
    yield CliRunner(tmp_path, config_file, tmp_path / "ledger.db")


class CliRunner:
    """Runs the installed `cascade` entry point as a real process (forked from a warm
    zygote where the interpreter's start-up does not matter: tests/forkserver.py)."""

    def __init__(self, cwd: Path, config: Path | None, db: Path) -> None:
        self.cwd = cwd
        self.config = config
        self.db = db

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY",)}
        if self.config is not None:
            env["CASCADE_CONFIG"] = str(self.config)
        env["CASCADE_DB"] = str(self.db)
        env.update(extra)
        return env

    def popen(self, *args: str, **extra_env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "cascadeflow_cli", *args],
            cwd=self.cwd,
            env=self.env(**extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __call__(self, *args: str, input: str | None = None, **extra_env: str) -> Run:
        env = self.env(**extra_env)
        zygote = forkserver.server()
        if zygote.usable_for(env):  # a real process, forked warm (tests/forkserver.py)
            done = zygote.run(list(args), cwd=self.cwd, env=env, input=input, timeout=120)
            return Run(done.returncode, done.stdout, done.stderr)
        proc = subprocess.run(
            [sys.executable, "-m", "cascadeflow_cli", *args],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)


def ledger_rows(db: Path, table: str) -> list[dict[str, object]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"select * from {table} order by rowid")]
    finally:
        conn.close()


def assert_one_error_line(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr


def no_user_namespaces() -> None:
    """In a forked process (a preexec_fn): enter a user namespace whose own limit allows no
    nested one, the kernel's answer where unprivileged user namespaces are disabled (the
    kernel sandbox of quality/sandbox.py is then unavailable)."""
    import ctypes

    uid, gid = os.getuid(), os.getgid()
    if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), "unshare")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    Path("/proc/sys/user/max_user_namespaces").write_text("0")


def descendants() -> set[int]:
    """PIDs of this process's children and grandchildren: a draft's sandboxed child is a
    child of the kernel sandbox's fork server (quality/fork_server.py) where there is one."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    me = os.getpid()
    mine = {pid for pid, parent in parents.items() if parent == me}
    return mine | {pid for pid, parent in parents.items() if parent in mine}
