"""Per-user budgets, stored in the ledger, and the spend they are checked against.

The public functions take any LedgerStore (ledger/storage.py); ``spend_triggers`` and the
``window_spend`` family below are the SQLite backend's (``sqlite_conn.Database``).

Spend per window is read from running aggregates kept by triggers on ``requests``
(15-minute buckets per user, plus a total), so a check costs the same with a million
rows as with ten. Every real time zone's midnight falls on a 15-minute boundary, so the
buckets add up exactly to any calendar window; a window that does not start on one is
summed from the rows themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.ledger import schema
from cascadeflow_cli.ledger.sql import money_sum_sql
from cascadeflow_cli.money import NANO_USD, amount_problem, nanos, nanos_from_usd
from cascadeflow_cli.text import equivalent_name, spelled_name, user_name
from cascadeflow_cli.windows import WINDOWS, Window

if TYPE_CHECKING:
    import sqlite3

    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.ledger.sqlite_conn import Database
    from cascadeflow_cli.ledger.storage import LedgerStore

BUCKET_MINUTES = 15
# "YYYY-MM-DDTHH:MM" of the 15-minute bucket holding a ts written by format_ts
_BUCKET_SQL = "substr({ts},1,14) || printf('%02d', (cast(substr({ts},15,2) as integer) / 15) * 15)"


@dataclass(frozen=True)
class BudgetConfig:
    """Limits in USD per window; ``None`` means no limit for that window."""

    daily: Decimal | None = None
    weekly: Decimal | None = None
    monthly: Decimal | None = None
    total: Decimal | None = None

    def limits(self) -> dict[str, Decimal]:
        return {w: v for w in WINDOWS if (v := getattr(self, w)) is not None}

    def limits_nusd(self) -> dict[str, int]:
        return {w: nanos_from_usd(v) for w, v in self.limits().items()}

    @property
    def is_empty(self) -> bool:
        return not self.limits()

    def merged(self, other: BudgetConfig) -> BudgetConfig:
        """This budget with ``other``'s set windows replacing its own."""
        return BudgetConfig(
            **{w: getattr(other, w) if getattr(other, w) is not None else getattr(self, w) for w in WINDOWS}
        )


def parse_limit(value: Any, window: str) -> Decimal:
    """A limit as a user typed it: a finite amount of USD from $0 ("may spend nothing")
    to MAX_AMOUNT_USD; an amount that would round to $0 is refused, not stored as 0."""
    text = str(value).strip().lstrip("$")
    try:
        # Decimal() reads "٣" and "５" as 3 and 5, and "1_000" as 1000: a typo, not an amount
        if not text.isascii() or "_" in text:
            raise InvalidOperation
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        raise InputError(f"--{window}: {value!r} is not an amount of USD") from None
    if not amount.is_finite() or (isinstance(value, float) and not math.isfinite(value)):
        raise InputError(f"--{window}: {value!r} is not a finite amount")
    if amount < 0:
        raise InputError(f"--{window}: a limit must not be negative (use `cascade budget rm` to remove one)")
    problem = amount_problem(amount)
    if problem:
        raise InputError(f"--{window}: {value} {problem}")
    # down to whole nano-dollars, as stored: rounded half-even, $0.0000000015 was stored as
    # $0.000000002 (a limit above the one typed) while `budget set` echoed the typed one
    floored = amount.quantize(NANO_USD, rounding=ROUND_FLOOR)
    if floored == 0 < amount:
        raise InputError(f"--{window}: {value} is below ${NANO_USD:f}, the smallest amount the ledger counts "
                         "(use 0 for nothing)")
    return floored


# --- schema -----------------------------------------------------------------------


def spend_triggers(conn: sqlite3.Connection) -> None:
    """Migration 002's SQLite part (its tables come from ledger/schema.py): the triggers
    that keep the spend aggregates, and the aggregates of rows already there."""
    new_bucket, old_bucket = _BUCKET_SQL.format(ts="new.ts"), _BUCKET_SQL.format(ts="old.ts")
    add = f"""
        insert into spend_buckets (user, bucket, cost_nusd) values (new.user, {new_bucket}, new.cost_nusd)
            on conflict (user, bucket) do update set cost_nusd = cost_nusd + excluded.cost_nusd;
        insert into spend_totals (user, cost_nusd, requests) values (new.user, new.cost_nusd, 1)
            on conflict (user) do update set cost_nusd = cost_nusd + excluded.cost_nusd,
                                             requests = requests + 1;"""
    sub = f"""
        update spend_buckets set cost_nusd = cost_nusd - old.cost_nusd
            where user = old.user and bucket = {old_bucket};
        update spend_totals set cost_nusd = cost_nusd - old.cost_nusd, requests = requests - 1
            where user = old.user;"""
    conn.execute(f"create trigger requests_spend_insert after insert on requests begin {add} end")
    conn.execute(f"create trigger requests_spend_delete after delete on requests begin {sub} end")
    conn.execute(
        "create trigger requests_spend_update after update of user, ts, cost_nusd on requests "
        f"begin {sub} {add} end"
    )
    # existing rows
    conn.execute(f"""insert into spend_buckets (user, bucket, cost_nusd)
                   select user, {_BUCKET_SQL.format(ts="ts")}, sum(cost_nusd) from requests
                   group by 1, 2""")
    conn.execute("""insert into spend_totals (user, cost_nusd, requests)
                  select user, sum(cost_nusd), count(*) from requests group by user""")


# --- budgets ----------------------------------------------------------------------


def budget_from_row(row: dict[str, Any]) -> BudgetConfig:
    """A ``budgets`` row (limits in nano-dollars, NULL: no limit) as a BudgetConfig."""
    return BudgetConfig(
        **{w: Decimal(row[f"{w}_nusd"]) / 10**9 if row[f"{w}_nusd"] is not None else None for w in WINDOWS}
    )


def budget_row(budget: BudgetConfig) -> dict[str, int | None]:
    """The limit columns of a ``budgets`` row."""
    return {f"{w}_nusd": nanos_from_usd(v) if v is not None else None
            for w, v in ((w, getattr(budget, w)) for w in WINDOWS)}


def get_budget(ledger: LedgerStore, user: str) -> BudgetConfig | None:
    return ledger.get_budget(user)


def effective_budget(ledger: LedgerStore, config: AppConfig, user: str) -> BudgetConfig | None:
    """The user's own budget, else the config's ``[budgets.default]``, else None."""
    own = ledger.get_budget(user)
    if own is not None:
        return own
    default = BudgetConfig(**dict(config.budgets.default))
    return None if default.is_empty else default


def set_budget(ledger: LedgerStore, user: str, budget: BudgetConfig) -> BudgetConfig:
    """Set the given windows (others keep their limits); returns the stored budget."""
    user = ledger_user(ledger, user)  # blank, not UTF-8, a spoofing character; NFC or legacy
    if budget.is_empty:
        raise InputError("give at least one of --daily, --weekly, --monthly, --total")
    return ledger.set_budget(user, budget)


def remove_budget(ledger: LedgerStore, user: str) -> bool:
    return ledger.remove_budget(user)


def list_budgets(ledger: LedgerStore) -> list[tuple[str, BudgetConfig]]:
    return ledger.list_budgets()


def budget_owner(ledger: LedgerStore, given: str) -> str | None:
    """The user with a budget of their own that ``given`` names: exactly, or as
    ``shown_name`` spells it (`budget list` shows it so): a legacy name cannot be set
    today, but can still be shown and removed. None: no such budget, or two match."""
    stored = {name for name, _ in list_budgets(ledger)}
    return given if given in stored else spelled_name(given, stored)


def spelled_user(ledger: LedgerStore, given: str) -> str | None:
    """The legacy user name ``given`` spells (``spelled_name``) among the users with spend,
    a budget or a key. `usage`, `logs`, `forecast`, `anomalies`, `budget show` look a
    `--user` up with it as `budget rm` does: ``--user 'alice\\x0d'`` found nothing."""
    if "\\" not in given and given.isascii():  # no spelling, and its own NFC: spare the scan
        return None
    return spelled_name(given, known_users(ledger))


def known_users(ledger: LedgerStore) -> set[str]:
    """Every user name the ledger holds: with spend, a key or a budget of their own."""
    return {row["user"] for table in (schema.SPEND_TOTALS, schema.API_KEYS)
            for row in ledger.table_rows(table)} | {name for name, _ in list_budgets(ledger)}


def ledger_user(ledger: LedgerStore, user: str) -> str:
    """The name a request, budget or key of ``user`` is written under: ``user_name``'s
    NFC, or the one legacy form the ledger already keys that person on (an older version
    stored "Jose\\u0301" decomposed): their budget and spend go on applying, not a second
    user with a fresh budget. When both forms are stored (that version's split), NFC's."""
    name = user_name(user)
    if name.isascii():  # ASCII is its own NFC and nothing else's (but the Kelvin sign's)
        return name
    return equivalent_name(name, known_users(ledger)) or name


# --- spend ------------------------------------------------------------------------


def _bucket_key(moment: datetime) -> str:
    return format_ts(moment)[:16]


def window_spend(db: Database, user: str, win: Window) -> int:
    """Recorded spend of ``user`` inside ``win``, in nano-dollars. (These reads run on every
    request: plain ``conn.execute``, no dict per row.)"""
    if win.end is None:
        row = db.conn.execute("select cost_nusd from spend_totals where user = ?", [user]).fetchone()
        return nanos(row[0]) if row else 0
    aligned = all(
        m.minute % BUCKET_MINUTES == 0 and m.second == 0 and m.microsecond == 0 for m in (win.start, win.end)
    )
    if aligned:
        sql = (
            f"select {money_sum_sql('cost_nusd')} as s from spend_buckets "
            "where user = ? and bucket >= ? and bucket < ?"
        )
        params = [user, _bucket_key(win.start), _bucket_key(win.end)]
    else:
        sql = (f"select {money_sum_sql('cost_nusd')} as s from requests "
               "where user = ? and ts >= ? and ts < ?")
        params = [user, format_ts(win.start), format_ts(win.end)]
    return nanos(db.conn.execute(sql, params).fetchone()[0])


def request_count(db: Database, user: str) -> int:
    row = db.conn.execute("select requests from spend_totals where user = ?", [user]).fetchone()
    return row[0] if row else 0


def reserved_spend(db: Database, user: str) -> int:
    """Worst-case cost of this user's requests in flight."""
    sql = f"select {money_sum_sql('amount_nusd')} from reservations where user = ?"
    return nanos(db.conn.execute(sql, [user]).fetchone()[0])
