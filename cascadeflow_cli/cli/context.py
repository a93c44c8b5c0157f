"""What every command shares: the global options, the loaded config, the ledger.
Loaded on first use, so `cascade --help` never reads a file or imports sqlite-utils."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.config import AppConfig, load_config, resolve_db_path, resolve_ledger_location
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    import typer
    from rich.console import Console

    from cascadeflow_cli.dburl import LedgerLocation
    from cascadeflow_cli.ledger.db import Ledger


@dataclass
class AppContext:
    config_path: Path | None = None
    db_path: str | Path | None = None  # --db: a path or a postgresql:// URL
    debug: bool = False
    _ledger: Ledger | None = field(default=None, repr=False)
    # run when the command ends, before the ledger closes (telemetry's bounded flush)
    on_close: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @cached_property
    def config(self) -> AppConfig:
        return load_config(self.config_path)

    @cached_property
    def resolved_location(self) -> LedgerLocation:
        """The ledger's file or PostgreSQL database (flag, $CASCADE_DB, config, default)."""
        return resolve_ledger_location(self.db_path, self.config)

    @cached_property
    def resolved_db_path(self) -> Path:
        return resolve_db_path(Path(self.db_path) if self.db_path else None, self.config)

    def ledger(self, *, read_only: bool = False) -> Ledger:
        """``read_only``: the command never writes (a file it may not write is then read)."""
        if self._ledger is None:
            from cascadeflow_cli.ledger.backend import open_store

            self._ledger = open_store(self.resolved_location, read_only=read_only)  # type: ignore[assignment]
            for moved, reason in self._ledger.journal_refused:  # once: the next command is quiet
                sys.stderr.write(f"warning: an answered request the ledger refuses for good was moved "
                                 f"to {moved} (kept, not recorded; see docs/errors.md): {reason}\n")
            if self._ledger.journal_waiting:  # answered earlier, the ledger still cannot take them
                n = self._ledger.journal_waiting
                from cascadeflow_cli.ledger.journal import why

                sys.stderr.write(f"warning: {n} answered request{'s' if n != 1 else ''} "
                                 f"wait{'s' if n == 1 else ''} in {self._ledger.path}.journal: "
                                 f"the ledger cannot be written"
                                 f"{why(self._ledger.journal_error)}\n")
        return self._ledger

    def refuse_ledger_as_output(self, output: Path | None) -> None:
        """An InputError when ``output`` is the ledger's own file (or its -wal/-shm): opening
        it to write truncated every request the ledger held (`batch -o ledger.db`)."""
        from cascadeflow_cli.files import is_sqlite_file_of

        db = self.resolved_location.path
        if output is not None and db is not None and is_sqlite_file_of(output, db):
            raise InputError(f"{output}: that is the ledger file ({db}); write to another file")

    def reader_user(self, given: str | None) -> str | None:
        """A read command's ``--user`` as the ledger (opened read-only) stores it: a legacy
        name is found under its spelling (``'alice\\x0d'``), as `budget rm` finds it."""
        if given is None:
            return None
        from cascadeflow_cli.ledger.budgets import spelled_user

        return spelled_user(self.ledger(read_only=True), given) or given

    def close(self) -> None:
        while self.on_close:
            self.on_close.pop()()
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def app_context(ctx: typer.Context) -> AppContext:
    """The invocation's AppContext: main() hands one to click as ``obj`` and the root
    callback fills in the global options; click passes ``obj`` down to every subcommand.
    A command run without main() (an in-process test of ``app``) gets a fresh one."""
    return ctx.ensure_object(AppContext)


def default_user() -> str:
    from cascadeflow_cli.text import check_text

    return check_text(os.environ.get("CASCADE_USER") or "default", "$CASCADE_USER")


def stderr_console() -> Console:
    return _safe_console()(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    return _safe_console()(highlight=False)


@functools.cache  # rich and re load on first use (tests/test_startup)
def _safe_console() -> type[Console]:
    """A rich Console that escapes control characters in the text it prints (not in the
    codes it adds itself): a user name, query or answer holding ESC [2J or ESC ]0; (from
    an import, a serve client, a provider) cleared the terminal of whoever ran `cascade
    logs`, or retitled it (hostile-4). Shown as \\x1b; --json output is JSON-escaped."""
    from rich.console import Console
    from rich.segment import Segment

    from cascadeflow_cli.text import escape_controls, has_controls

    class SafeConsole(Console):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self._width is not None and self._width < 1:
                # COLUMNS=0 (as some CI runners and editors' shells set it) made every
                # table and summary line print nothing at all; 0 is no width: measure
                self._width = None

        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            return super()._render_buffer(
                seg if seg.control or not has_controls(seg.text)
                else Segment(escape_controls(seg.text), seg.style, seg.control)
                for seg in buffer
            )

    return SafeConsole


def is_terminal() -> bool:
    return sys.stderr.isatty()
