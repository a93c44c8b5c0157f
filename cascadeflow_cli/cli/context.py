"""What every command shares: the global options, the loaded config, the ledger.
Loaded on first use, so `cascade --help` never reads a file or imports sqlite-utils."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cascadeflow_cli.config import AppConfig, load_config, resolve_db_path, resolve_ledger_location
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
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

    def ledger(self) -> Ledger:
        if self._ledger is None:
            from cascadeflow_cli.ledger.backend import open_store

            self._ledger = open_store(self.resolved_location)  # type: ignore[assignment]
            if self._ledger.journal_waiting:  # answered earlier, the ledger still cannot take them
                n = self._ledger.journal_waiting
                sys.stderr.write(f"warning: {n} answered request{'s' if n != 1 else ''} "
                                 f"wait{'s' if n == 1 else ''} in {self._ledger.path}.journal: "
                                 "the ledger cannot be written\n")
        return self._ledger

    def close(self) -> None:
        while self.on_close:
            self.on_close.pop()()
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


_STATE = AppContext()
D = TypeVar("D", date, datetime)


def state() -> AppContext:
    """The current invocation's options, config and ledger."""
    return _STATE


def default_user() -> str:
    from cascadeflow_cli.text import check_text

    return check_text(os.environ.get("CASCADE_USER") or "default", "$CASCADE_USER")


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def is_terminal() -> bool:
    return sys.stderr.isatty()


FIRST_YEAR, LAST_YEAR = 1970, 9998  # the ledger's range (import refuses others): a day after still exists


def check_date_range(moment: D, text: str) -> D:
    """``moment`` if its year is one the ledger can hold, else an InputError."""
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise InputError(f"date out of range: {text!r} (use a year from {FIRST_YEAR} to {LAST_YEAR})")
    return moment


def parse_since(text: str, timezone: str) -> datetime:
    """A ``--since/--until`` value: a date (local midnight in the ledger's time zone) or
    an ISO 8601 date-time (naive means that time zone). Returned in UTC."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(timezone)
    try:
        if len(text) == 10:
            moment = datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), tz)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
        return check_date_range(moment.astimezone(UTC), text)
    except ValueError:
        raise InputError(f"not a date: {text!r} (use YYYY-MM-DD or an ISO 8601 date-time)") from None
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise InputError(f"date out of range: {text!r}") from None
