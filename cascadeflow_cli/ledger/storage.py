"""The storage interface: every operation the layers above the ledger (and the ledger's own
policy modules: enforcement, status, budgets, spend series, labels) ask of a backend.

``LedgerStore`` is what the rest of the code holds; ``ledger.db.Ledger`` (SQLite) is its
first implementation, a PostgreSQL backend the second. A backend implements the methods
below and nothing above it changes. The public functions of the ledger modules
(``set_budget(ledger, ...)``, ``daily_spend(ledger, ...)``, ``budget_status(...)``,
``BudgetGate``...) take any ``LedgerStore`` and keep the policy (validation, zero-filled
series, the enforcement verdict) out of the backends, which only read and write.

Conventions for backends:
- Money is integer nano-dollars; timestamps are ledger text (``clock.format_ts``, UTC,
  fixed width, so text order is time order); records are ledger/schema.py's.
- Every write method is one transaction: all of it or nothing, ``LedgerError`` (one
  readable line) when it cannot be written.
- ``budget_lock(user)`` serialises the check-and-reserve of one user across processes
  (SQLite: ``BEGIN IMMEDIATE``, the whole file; PostgreSQL: a transaction holding a
  per-user advisory lock), so two requests can never both spend the last dollar.
- SQL dialect differences (parameter style, upsert, RETURNING, locking, date arithmetic)
  stay inside a backend's own modules; ``Dialect`` names the small ones shared SQL needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from sqlite3 import DatabaseError
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cascadeflow_cli.clock import Clock
    from cascadeflow_cli.ledger.budgets import BudgetConfig
    from cascadeflow_cli.ledger.export import LedgerFilter
    from cascadeflow_cli.ledger.labels import ShadowOutcome
    from cascadeflow_cli.ledger.schema import RequestRecord, Table
    from cascadeflow_cli.ledger.usage import UsageReport
    from cascadeflow_cli.windows import Window

# ``DatabaseError``: a damaged store met mid-read (past the checks at open), which the CLI
# renders as one line. SQLite's driver raises it; a backend whose driver raises its own
# (psycopg) re-raises damage as LedgerError, or as this class.

# {group key (None when not grouped): {local day: nano-dollars}}
DailyTotals = dict[str | None, dict[date, int]]


@dataclass(frozen=True)
class Hold:
    """A reservation: the worst-case cost of a request in flight, counted against the
    user's budgets until the request is recorded (settled) or released, or it expires
    (``expires_at``), or its process (``pid`` on ``host``) is found dead."""

    id: str
    user: str
    request_id: str
    amount_nusd: int
    created_at: str
    expires_at: str
    pid: int
    host: str


@dataclass(frozen=True)
class RecordCounts:
    """What ``record_many`` added (rows already there are skipped, not counted)."""

    requests: int = 0
    calls: int = 0


@dataclass(frozen=True)
class Dialect:
    """The SQL differences shared queries care about."""

    name: str  # "sqlite" | "postgresql"
    placeholder: str = "?"  # "%s" for psycopg

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` placeholders, in this dialect's parameter style."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


SQLITE = Dialect("sqlite")


@dataclass(frozen=True)
class SpendAsk:
    """What a budget check reads for one scope (a user, or a team's members together):
    their spend in each window and their requests in flight."""

    users: tuple[str, ...]
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class SpendState:
    """The answer to a SpendAsk: spend per window (in the ask's order), and reservations."""

    spent: tuple[int, ...]
    reserved_nusd: int


class SpendReader(Protocol):
    """Spend reads, on the store (a snapshot) or inside ``budget_lock`` (consistent with
    the reservation it decides)."""

    def spend_state(self, asks: Sequence[SpendAsk]) -> list[SpendState]:
        """Every ask answered from one consistent state (a server: one statement, one
        round trip; the budget check reads all of a user's and their teams' windows so)."""

    def window_spend(self, user: str, win: Window) -> int:
        """Recorded spend of ``user`` inside ``win`` (``win.end`` None: all time)."""

    def reserved_spend(self, user: str) -> int:
        """Worst-case cost of ``user``'s requests in flight (live reservations)."""

    def request_count(self, user: str) -> int:
        """How many requests ``user`` has in the ledger."""


class BudgetTransaction(SpendReader, Protocol):
    """One user's check-and-reserve, inside ``LedgerStore.budget_lock``."""

    def expire_reservations(self, now: datetime) -> None:
        """Drop reservations past their expiry, and those of dead processes on this host,
        before the next read (a server sends it with that read, in one round trip)."""

    def reserve(self, hold: Hold) -> None:
        """Count ``hold`` against the user's budgets until settled or released."""

    def first_warning(self, user: str, window: str, window_start: str, threshold: str, now: datetime) -> bool:
        """Note that ``user`` was warned at ``threshold`` in this window; False when they
        already were (each threshold warns once a window)."""


@runtime_checkable
class LedgerStore(SpendReader, Protocol):
    """A ledger backend. Cheap to open; safe to share between threads (each gets its
    own connection); ``close`` releases them all."""

    path: Path  # names the ledger in messages; the side journal lives beside it
    clock: Clock
    journal_waiting: int  # journaled requests the ledger could not take at open
    journal_error: str | None  # why it could not (the last refusal's message)
    journal_refused: list[tuple[Path, str]]  # entries it refused for good, moved aside at open

    # --- life cycle -----------------------------------------------------------------

    def close(self) -> None: ...

    def __enter__(self) -> LedgerStore: ...

    def __exit__(self, *exc: object) -> None: ...

    def writable(self) -> bool:
        """The ledger can be written now."""

    def check_writable(self) -> None:
        """Raise LedgerError unless a request could be recorded (before paying for one)."""

    def replay_journal(self) -> int:
        """Record the side journal's waiting requests; returns how many still wait."""

    # --- requests: write --------------------------------------------------------------

    def record(self, request: RequestRecord, reservation_id: str | None = None) -> None:
        """Store a request with its calls and signals, settling ``reservation_id`` in the
        same transaction. Idempotent by request id (a journal replay may come second)."""

    def record_many(self, requests: Iterable[RequestRecord],
                    on_progress: Callable[[int], None] | None = None) -> RecordCounts:
        """Store many requests (an import) in one transaction; requests whose id or
        ``external_id`` is already there are skipped with their calls. ``on_progress``
        hears the running count of requests seen."""

    # --- requests: read ---------------------------------------------------------------

    def recent_requests(self, limit: int | None = 10, user: str | None = None,
                        since: str | None = None) -> list[dict[str, Any]]:
        """Request rows newest first, each with ``"calls"``: its call rows in order."""

    def load_request(self, request_id: str) -> dict[str, Any]:
        """One request row with its ``"calls"``, shaped like ``recent_requests``."""

    def iter_records(self, flt: LedgerFilter | None = None, page: int = 500) -> Iterator[RequestRecord]:
        """Every request the filter selects, oldest first, as records (with calls)."""

    def export_rows(self, fmt: str, flt: LedgerFilter, size: int = 2000) -> Iterator[list[str]]:
        """`cascade export`'s rows (ledger/schema.py's EXPORT_COLUMNS) in batches of at most
        ``size``, each row one CSV line (no line end) or one JSON object text, from one
        consistent read. Order: request time, insertion order, call order."""

    def usage(self, flt: LedgerFilter | None = None, by: str | None = None,
              timezone: str = "UTC") -> UsageReport:
        """`cascade usage`: totals, and per group when ``by`` is one of usage.GROUPINGS."""

    def daily_totals(self, *, by: str | None, user: str | None, model: str | None, timezone: str,
                     start: date | None, end: date | None) -> DailyTotals:
        """Spend per local day in ``timezone`` (days ``start`` to ``end`` inclusive when
        given), grouped by ``by`` ("user", "model" or None). Without ``model`` or
        ``by="model"`` whole requests count; else model calls, by the call's time."""

    def total_spend(self, user: str) -> int:
        """Everything ``user`` has spent (the sum of their requests' costs)."""

    # --- enforcement ------------------------------------------------------------------

    def budget_lock(self, user: str, teams: Sequence[str] = ()) -> AbstractContextManager[BudgetTransaction]:
        """A write transaction in which ``user``'s spend (and each team's in ``teams``,
        `[budgets.teams.NAME]`) cannot change under the caller."""

    def release(self, reservation_id: str | None) -> None:
        """Drop a reservation (its request ended without being recorded). None: nothing."""

    # --- budgets ----------------------------------------------------------------------

    def get_budget(self, user: str) -> BudgetConfig | None: ...

    def set_budget(self, user: str, budget: BudgetConfig) -> BudgetConfig:
        """Set the windows ``budget`` gives (others keep theirs); returns the stored one."""

    def remove_budget(self, user: str) -> bool:
        """True when the user had a budget."""

    def list_budgets(self) -> list[tuple[str, BudgetConfig]]:
        """Every stored budget, by user name."""

    # --- quality labels ---------------------------------------------------------------

    def record_feedback(self, request_id: str, good: bool, note: str | None = None) -> bool:
        """Label a request's answer; True when it replaced an earlier feedback label."""

    def record_shadow(self, outcome: ShadowOutcome, reservation_id: str | None) -> None:
        """The shadow call, its cost added to the request, its label, its reservation settled."""

    def next_seq(self, request_id: str) -> int:
        """The ``seq`` a new call of this request gets."""

    def labels_for(self, request_id: str) -> list[dict[str, Any]]:
        """The request's quality_labels rows, by source."""

    def labelled_drafts(self) -> list[dict[str, Any]]:
        """For calibration: each ok request with a label (feedback or shadow) and an ok
        first draft call, oldest first, as ``{id, query, domain, draft_accepted, answer,
        finish_reason, call_id, feedback, shadow, shadow_status, features}``."""

    # --- batch runs -------------------------------------------------------------------

    def start_batch(self, output: Path | None, input_path: Path) -> str:
        """Register a batch run; returns its id."""

    def latest_batch(self, output: Path) -> str | None:
        """The newest run that wrote ``output``."""

    def committed_rows(self, batch_id: str) -> dict[str, str]:
        """``row key -> request id`` of every request of that run in the ledger."""

    def committed_queries(self, batch_id: str) -> dict[str, str | None]:
        """``row key -> query`` of those requests (None where prompts were not stored)."""

    # --- whole tables (`cascade ledger copy`) -----------------------------------------

    def table_rows(self, table: Table) -> Iterator[dict[str, Any]]:
        """Every row of ``table`` in primary-key order, as stored (timestamps as ledger
        text), streamed (a million rows never sit in memory)."""

    def add_rows(self, table: Table, rows: Sequence[dict[str, Any]]) -> int:
        """Insert ``rows`` in one transaction, skipping a row whose key is there already or
        whose request (a ``request_id`` column) is not; returns how many went in."""


@runtime_checkable
class RateWindows(Protocol):
    """A backend that keeps each key's requests-per-minute window itself, for every host
    on the ledger and on the database's clock (PostgreSQL). SQLite lives on one host,
    whose servers share a file per key instead (server/limits.py)."""

    def admit_request(self, prefix: str, limit: int, window_s: float) -> float | None:
        """Count a request of key ``prefix`` if fewer than ``limit`` of its requests started
        in the last ``window_s`` seconds, and return None; else count nothing and return the
        seconds until the oldest of them leaves the window. One short transaction."""


def spend_state_by_parts(reader: SpendReader, asks: Sequence[SpendAsk]) -> list[SpendState]:
    """``spend_state`` from the per-window reads, for a backend whose reads all see one
    state anyway (SQLite: inside ``budget_lock`` the file's write lock keeps it still).
    Reservations first: see ledger/postgres/budget_sql.py for why that order."""
    out = []
    for ask in asks:
        reserved = sum(reader.reserved_spend(u) for u in ask.users)
        out.append(SpendState(tuple(sum(reader.window_spend(u, w) for u in ask.users) for w in ask.windows),
                              reserved))
    return out


def mapping_rows(names: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[dict[str, Any]]:
    """Cursor rows as dicts (for backends whose driver returns tuples)."""
    keys = list(names)
    return [dict(zip(keys, row, strict=True)) for row in rows]


__all__ = [
    "SQLITE",
    "BudgetTransaction",
    "DailyTotals",
    "DatabaseError",
    "Dialect",
    "Hold",
    "LedgerStore",
    "RateWindows",
    "RecordCounts",
    "SpendAsk",
    "SpendReader",
    "SpendState",
    "mapping_rows",
    "spend_state_by_parts",
]
