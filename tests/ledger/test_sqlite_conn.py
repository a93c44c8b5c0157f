"""ledger/sqlite_conn.py: the transaction behaviour the ledger relies on, on a real file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cascadeflow_cli.ledger.sqlite_conn import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute("create table t (k text primary key, a int, b int)")
    return Database(conn)


def other(tmp_path: Path) -> sqlite3.Connection:
    """A second connection: sees only what was committed."""
    return sqlite3.connect(tmp_path / "t.db")


def test_a_lone_write_is_committed(db: Database, tmp_path: Path) -> None:
    db.execute("insert into t values (?, ?, ?)", ["x", 1, 2])
    assert not db.conn.in_transaction
    assert other(tmp_path).execute("select count(*) from t").fetchone() == (1,)


def test_a_write_inside_a_transaction_waits_for_its_commit(db: Database, tmp_path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.execute("insert into t values (?, ?, ?)", ["x", 1, 2])
    db["t"].insert_all([{"k": "y", "a": 1, "b": 2}])
    assert db.conn.in_transaction
    assert other(tmp_path).execute("select count(*) from t").fetchone() == (0,)
    db.execute("ROLLBACK")
    assert db["t"].count == 0


def test_a_failed_write_leaves_no_transaction_open(db: Database) -> None:
    db.execute("insert into t values (?, ?, ?)", ["x", 1, 2])
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("insert into t values (?, ?, ?)", ["x", 3, 4])
    assert not db.conn.in_transaction


def test_upsert_inserts_then_updates_only_the_given_columns(db: Database) -> None:
    db["t"].upsert({"k": "x", "a": 1, "b": 2}, pk="k")
    db["t"].upsert({"k": "x", "a": 5}, pk="k")
    db["t"].upsert({"k": "y"}, pk="k")
    assert list(db.query("select * from t order by k")) == [
        {"k": "x", "a": 5, "b": 2}, {"k": "y", "a": None, "b": None}]


def test_insert_all_in_batches_and_rows(db: Database) -> None:
    db["t"].insert_all(({"k": str(i), "a": i, "b": -i} for i in range(7)), batch_size=3)
    assert db["t"].count == 7
    assert sorted(r["a"] for r in db["t"].rows) == list(range(7))


def test_query_refuses_a_statement_without_rows(db: Database) -> None:
    with pytest.raises(ValueError, match="returns rows"):
        db.query("insert into t values ('z', 0, 0)")
