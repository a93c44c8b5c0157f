"""The PostgreSQL backend's budget and batch-run tables, mixed into ``PostgresLedger``
(whose ``_tx``, ``_rows``, ``_value`` and ``clock`` they use), as PgKeyQueries is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.ledger.budgets import BudgetConfig, budget_from_row
from cascadeflow_cli.ledger.postgres import budget_sql
from cascadeflow_cli.money import nanos_from_usd
from cascadeflow_cli.windows import WINDOWS

if TYPE_CHECKING:
    import psycopg

    from cascadeflow_cli.clock import Clock


class _Queries:
    _tx: Callable[..., Any]
    _rows: Callable[..., list[dict[str, Any]]]
    _value: Callable[..., Any]
    clock: Clock


class PgBudgetQueries(_Queries):
    """``budgets``: each user's limits."""

    def get_budget(self, user: str) -> BudgetConfig | None:
        rows = self._rows('select * from budgets where "user" = %s', [user])
        return budget_from_row(rows[0]) if rows else None

    def set_budget(self, user: str, budget: BudgetConfig) -> BudgetConfig:
        def work(conn: psycopg.Connection[Any]) -> BudgetConfig:
            columns = budget_sql.LIMIT_COLUMNS
            row = conn.execute(f'select {", ".join(columns)} from budgets where "user" = %s for update',
                               [user]).fetchone()
            old = budget_from_row(dict(zip(columns, row, strict=True))) if row else BudgetConfig()
            stored = old.merged(budget)
            limits = [nanos_from_usd(v) if (v := getattr(stored, w)) is not None else None for w in WINDOWS]
            conn.execute(
                f'insert into budgets ("user", {", ".join(budget_sql.LIMIT_COLUMNS)}, updated_at) '
                "values (%s, %s, %s, %s, %s, %s) on conflict (\"user\") do update set "
                + ", ".join(f"{c} = excluded.{c}" for c in (*budget_sql.LIMIT_COLUMNS, "updated_at")),
                [user, *limits, self.clock.now()])
            return stored

        return self._tx(work)  # type: ignore[no-any-return]

    def remove_budget(self, user: str) -> bool:
        return bool(self._tx(lambda conn: conn.execute('delete from budgets where "user" = %s',
                                                       [user]).rowcount))

    def list_budgets(self) -> list[tuple[str, BudgetConfig]]:
        rows = self._rows('select * from budgets order by "user"')
        return [(r["user"], budget_from_row(r)) for r in rows]


class PgBatchQueries(_Queries):
    """``batches`` and the rows a batch has committed (``cascade batch --resume``)."""

    def start_batch(self, output: Path | None, input_path: Path) -> str:
        import uuid

        batch_id = uuid.uuid4().hex[:16]
        self._tx(lambda conn: conn.execute(
            "insert into batches (id, output, input, started_at) values (%s, %s, %s, %s)",
            [batch_id, str(output) if output else None, str(input_path), self.clock.now()]))
        return batch_id

    def latest_batch(self, output: Path) -> str | None:
        return self._value("select id from batches where output = %s order by started_at desc, id desc "
                           "limit 1", [str(output)])  # type: ignore[no-any-return]

    def committed_rows(self, batch_id: str) -> dict[str, str]:
        return self._batch_column(batch_id, "id")

    def committed_queries(self, batch_id: str) -> dict[str, str | None]:
        return self._batch_column(batch_id, "query")

    def _batch_column(self, batch_id: str, column: str) -> dict[str, Any]:
        prefix = f"{batch_id}:"
        rows = self._rows(f"select external_id, {column} from requests where external_id >= %s "
                          "and external_id < %s", [prefix, prefix[:-1] + chr(ord(":") + 1)])
        return {r["external_id"][len(prefix):]: r[column] for r in rows}
