"""Shared constants and helpers for the end-to-end CLI tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliRunner, Run, ledger_rows

QUERY = "What is the capital of France?"
DETAILED = ("Explain in detail how photosynthesis converts light into chemical energy, "
            "including the light-dependent reactions and the Calvin cycle.")
LONG_ANSWER = (
    "Photosynthesis happens in two linked stages. In the light-dependent reactions, chlorophyll "
    "in the thylakoid membranes absorbs photons, splitting water and releasing oxygen; the "
    "energy drives an electron transport chain that makes ATP and NADPH. In the Calvin cycle, "
    "which runs in the stroma, the enzyme RuBisCO fixes carbon dioxide onto ribulose "
    "bisphosphate, and ATP and NADPH reduce the products to glyceraldehyde-3-phosphate, the "
    "sugar the plant builds on. Most of that sugar regenerates the cycle; the rest becomes "
    "glucose, sucrose and starch."
)
REFUSAL = "I'm sorry, but I can't help with that."

# CLI.md: the `cascade ask --json` object and each of its calls
ASK_KEYS = frozenset({
    "request_id", "user", "domain", "domain_confidence", "answer", "model", "draft_model",
    "draft_accepted", "escalated", "quality_score", "quality_reasons", "cost",
    "verifier_only_cost", "savings", "enforcement", "enforcement_message", "latency_ms", "calls",
    "quality_threshold", "calibrated",  # issue 9: what quality_score was compared with
})
CALL_KEYS = frozenset({
    "model", "role", "input_tokens", "output_tokens", "cost", "latency_ms", "quality_score",
    "accepted",
})
COMMANDS = ("ask", "logs", "models", "demo", "config")


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def rows(db: Path, table: str) -> list[dict[str, object]]:
    """Ledger rows, or none when the command never created the ledger."""
    return ledger_rows(db, table) if db.exists() else []


def stderr_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def read_terminal(leader: int, idle: float = 30) -> bytes:
    """Everything written to a pseudo-terminal until the other side closes (or ``idle``
    seconds without output); closes ``leader``."""
    import select

    seen = b""
    while select.select([leader], [], [], idle)[0]:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return seen


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(0.01)


def kill_9_when(proc: subprocess.Popen[str], predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """SIGKILL ``proc`` once ``predicate()`` holds (it must still be running then)."""
    try:
        wait_until(lambda: predicate() or proc.poll() is not None, timeout=timeout)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def run_together(cli: CliRunner, *commands: list[str], **extra_env: str) -> list[Run]:
    """Run independent commands at the same time (each costs a Python start-up)."""
    procs = [cli.popen(*args, **extra_env) for args in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(Run(proc.returncode, out, err))
    return results


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """A file nobody may write, root included (chattr +i), or skip."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o600)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a file read-only for root here (no chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
