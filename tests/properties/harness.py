"""The real `cascade` entry point, run in this process (a subprocess per generated example
would cost the suite minutes), and a fingerprint of a ledger to prove it unchanged."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cascadeflow_cli.cli.app import main
from cascadeflow_cli.cli.context import state


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def one_error_line(self) -> str:
        """The single ``error: ...`` line a refused input must give (else AssertionError)."""
        assert self.code == 1, (self.code, self.stderr)
        assert len(self.lines) == 1, self.stderr
        line = self.lines[0]
        assert line.startswith("error: "), line
        assert "unexpected" not in line and "Traceback" not in self.stderr, line
        return line


def _reset() -> None:
    """A fresh invocation: the context caches the config it loaded."""
    ctx = state()
    ctx.close()
    for cached in ("config", "resolved_db_path", "resolved_location"):
        ctx.__dict__.pop(cached, None)


def run(*args: str, stdin: bytes = b"") -> Result:
    """``cascade ARGS`` through ``cascadeflow_cli.cli.app.main``, exit code included."""
    _reset()
    out, err = io.BytesIO(), io.StringIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", errors="backslashreplace", write_through=True)
    stdin_io = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    old_in = sys.stdin
    sys.stdin = stdin_io
    code = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # what main let through is a finding
                err.write(f"Traceback (escaped main): {type(exc).__name__}: {exc}\n")
                code = 99
    finally:
        sys.stdin = old_in
        _reset()
    stdout.flush()
    return Result(code, out.getvalue().decode("utf-8", "backslashreplace"), err.getvalue())


def fingerprint(db: Path) -> tuple[str, dict[str, int]]:
    """The ledger's bytes (file and -wal; no -wal and an empty one are the same: the
    read-only look below may leave an empty one) and the row count of every table."""
    digest = hashlib.sha256()
    for file in (db, db.with_name(db.name + "-wal")):
        digest.update(file.read_bytes() if file.exists() else b"")
        digest.update(b"\x00")
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        counts = {t: conn.execute(f"select count(*) from [{t}]").fetchone()[0] for t in tables}
    finally:
        conn.close()
    return digest.hexdigest(), counts


def scratch(prefix: str = "props-") -> tempfile.TemporaryDirectory[str]:
    """A temporary directory, in memory where the system has one (/dev/shm): each example
    makes real SQLite files, and on a loaded machine their fsyncs, not the parsing under
    test, would dominate the run."""
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix=prefix, dir=where)


@contextlib.contextmanager
def seeded_ledger() -> Iterator[Path]:
    """A scratch ledger holding one imported row, so "unchanged" has something to keep."""
    with scratch() as tmp:
        db = Path(tmp) / "l.db"
        seed = Path(tmp) / "seed.csv"
        seed.write_text("timestamp,user,model,cost\n2026-05-01T10:00:00Z,ann,openai/gpt-4o,0.5\n", "utf-8")
        assert run("--db", str(db), "import", str(seed)).code == 0
        yield db
