"""The ledger's schema on PostgreSQL: the same tables, columns and migrations as SQLite,
rendered from the one schema module (ledger/schema.py) with PostgreSQL's types.

Money is ``bigint`` nano-dollars (exact); timestamps are ``timestamptz`` (UTC) where
SQLite keeps fixed-width ISO text; flags stay 0/1 integers so rows read back alike.
The spend aggregates are kept by PL/pgSQL triggers, the PostgreSQL twin of SQLite's
triggers (ledger/budgets.py): 15-minute buckets per user and a per-user total, so a budget
check costs the same at a million rows as at ten.
"""

from __future__ import annotations

from cascadeflow_cli.ledger import schema, schema_ddl
from cascadeflow_cli.ledger.schema_ddl import DdlStyle

PG_TYPES = {schema.TEXT: "text", schema.INTEGER: "bigint", schema.REAL: "double precision"}
# columns that hold instants: timestamptz here, ISO text (format_ts) on SQLite
TIMESTAMPS = {
    ("requests", "ts"), ("calls", "ts"), ("budgets", "updated_at"), ("reservations", "created_at"),
    ("reservations", "expires_at"), ("budget_warnings", "window_start"), ("budget_warnings", "warned_at"),
    ("spend_buckets", "bucket"), ("batches", "started_at"), ("quality_labels", "created_at"),
    ("quality_labels", "updated_at"), ("_migrations", "applied_at"),
}
# lists of numbers (a key's rpm window): text on SQLite, which keeps that window in a file
ARRAYS = {("api_key_windows", "buckets"): "bigint[]", ("api_key_windows", "counts"): "bigint[]"}
BUCKET_SECONDS = 15 * 60


def q(name: str) -> str:
    """A quoted identifier (``user`` and ``window`` are reserved words here)."""
    return '"' + name.replace('"', '""') + '"'


def pg_type(table: schema.Table, column: schema.Column) -> str:
    if (table.name, column.name) in ARRAYS:
        return ARRAYS[table.name, column.name]
    return "timestamptz" if (table.name, column.name) in TIMESTAMPS else PG_TYPES[column.type]


PG_DDL = DdlStyle(q, pg_type)  # the shared DDL (schema_ddl.table_ddl), quoted and typed here


def bucket_sql(ts: str) -> str:
    """The start of the 15-minute bucket holding ``ts`` (every zone's midnight is on one)."""
    return f"to_timestamp(floor(extract(epoch from {ts}) / {BUCKET_SECONDS}) * {BUCKET_SECONDS})"


def _apply(rows: str, sign: str) -> str:
    """Add (``+``) or take away (``-``) the spend of the transition table ``rows``."""
    return f"""
        INSERT INTO spend_buckets ("user", bucket, cost_nusd)
            SELECT "user", {bucket_sql('ts')}, {sign}sum(cost_nusd) FROM {rows} GROUP BY 1, 2
            ON CONFLICT ("user", bucket)
            DO UPDATE SET cost_nusd = spend_buckets.cost_nusd + EXCLUDED.cost_nusd;
        INSERT INTO spend_totals ("user", cost_nusd, requests)
            SELECT "user", {sign}sum(cost_nusd), {sign}count(*) FROM {rows} GROUP BY 1
            ON CONFLICT ("user") DO UPDATE SET cost_nusd = spend_totals.cost_nusd + EXCLUDED.cost_nusd,
                                               requests = spend_totals.requests + EXCLUDED.requests;"""


# Statement-level triggers over transition tables: one aggregated upsert per statement,
# however many rows it wrote. (Row-level triggers updated the same bucket row once per
# row, and within one transaction each update lengthens that row's version chain: an
# import of 5,000 rows spent 80% of its time there.)
SPEND_TRIGGER = f"""
CREATE FUNCTION cascade_spend_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN {_apply('new_rows', '')} RETURN NULL; END $$;
CREATE FUNCTION cascade_spend_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN {_apply('old_rows', '-')} RETURN NULL; END $$;
CREATE FUNCTION cascade_spend_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN {_apply('old_rows', '-')} {_apply('new_rows', '')} RETURN NULL; END $$;
CREATE TRIGGER requests_spend_insert AFTER INSERT ON requests REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cascade_spend_insert();
CREATE TRIGGER requests_spend_delete AFTER DELETE ON requests REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cascade_spend_delete();
CREATE TRIGGER requests_spend_update AFTER UPDATE ON requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cascade_spend_update();
CREATE INDEX reservations_expires_at ON reservations (expires_at);
"""

# what a migration does on PostgreSQL beyond its tables (the dialect-specific part)
EXTRA: dict[str, list[str]] = {schema.M002: [SPEND_TRIGGER]}


def migration_ddl(migration: str) -> list[str]:
    """Every statement of ``migration``, tables in dependency order, then its extras."""
    return schema_ddl.migration_ddl(migration, PG_DDL) + EXTRA.get(migration, [])


MIGRATIONS_TABLE_DDL = (f"CREATE TABLE IF NOT EXISTS {q('_migrations')} "
                        f"(id bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz)")
