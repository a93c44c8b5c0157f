"""The storage interface (ledger/storage.py) and its SQLite implementation keep in step."""

from __future__ import annotations

import inspect
from pathlib import Path

from cascadeflow_cli.ledger import storage
from cascadeflow_cli.ledger.db import Ledger, open_ledger
from cascadeflow_cli.ledger.sqlite_store import BudgetTxn


def _members(protocol: type) -> set[str]:
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass in (object,) or klass.__name__ in ("Protocol", "Generic"):
            continue
        names |= {n for n in vars(klass) if not n.startswith("_")}
        names |= set(getattr(klass, "__annotations__", {}))
    return names


def test_the_sqlite_ledger_implements_every_operation(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.db") as ledger:
        assert isinstance(ledger, storage.LedgerStore)
        missing = sorted(n for n in _members(storage.LedgerStore) if not hasattr(ledger, n))
        assert missing == []


def test_signatures_match_the_protocol() -> None:
    """Same parameter names, so a caller written against the interface runs on SQLite."""
    for name in _members(storage.LedgerStore):
        declared = getattr(storage.LedgerStore, name, None)
        if not callable(declared) or name.startswith("__"):
            continue
        assert list(inspect.signature(getattr(Ledger, name)).parameters) == list(
            inspect.signature(declared).parameters), name
    for name in _members(storage.BudgetTransaction):
        declared = getattr(storage.BudgetTransaction, name)
        assert list(inspect.signature(getattr(BudgetTxn, name)).parameters) == list(
            inspect.signature(declared).parameters), name


def test_the_dialect_rewrites_placeholders_only_where_it_must() -> None:
    assert storage.SQLITE.sql("select 1 where a = ?") == "select 1 where a = ?"
    assert storage.Dialect("postgresql", "%s").sql("a = ? and b = ?") == "a = %s and b = %s"
