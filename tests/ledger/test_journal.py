"""The side journal (ledger/journal.py): entries round-trip, every open of the ledger
replays them idempotently and deletes them, a torn temporary file is ignored."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.ledger import journal
from cascadeflow_cli.ledger.db import open_ledger
from cascadeflow_cli.ledger.labels import CallSignals
from tests.cli.support import immutable
from tests.conftest import ledger_rows
from tests.ledger.test_db import request


def test_an_entry_round_trips_and_is_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    record = request(1)
    path = journal.write(db, record, "res-1", durable=True)
    assert path.parent == journal.journal_dir(db) == tmp_path / "l.db.journal"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    [(found, back, reservation)] = journal.pending(db)
    assert (found, back, reservation) == (path, record, "res-1")


def test_an_entry_keeps_a_drafts_live_signals(tmp_path: Path) -> None:
    """A journaled request whose draft carried log-probabilities and samples (issue 9)
    comes back whole, and its replay writes the signals with the request."""
    db = tmp_path / "l.db"
    signals = (CallSignals("req-1-0", (-0.1, -2.5), 3, 0.6667, {"logprob_mean": -1.3, "agreement": 0.6667}),)
    record = replace(request(1), signals=signals)
    journal.write(db, record, None, durable=True)
    [(_, back, _)] = journal.pending(db)
    assert back == record
    ledger = open_ledger(db)  # the open replays the entry
    try:
        assert journal.pending(db) == []
        [row] = ledger_rows(db, "call_signals")
        assert row["call_id"] == "req-1-0" and row["samples"] == 3
    finally:
        ledger.close()


def test_opening_the_ledger_replays_once_and_settles_the_reservation(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    with open_ledger(db) as ledger, ledger.write() as conn:
        conn["reservations"].insert(
            {
                "id": "res-1",
                "user": "alice",
                "request_id": "x",
                "amount_nusd": 9,
                "created_at": "t",
                "expires_at": "2999-01-01T00:00:00Z",
            }
        )
    journal.write(db, request(1), "res-1")
    journal.write(db, request(2), None)
    (journal.journal_dir(db) / "torn.tmp").write_bytes(b'{"v": 1, "requ')  # killed mid-write
    with open_ledger(db) as ledger:
        assert ledger.journal_waiting == 0
    assert len(ledger_rows(db, "requests")) == 2 and len(ledger_rows(db, "calls")) == 2
    assert ledger_rows(db, "reservations") == []
    assert journal.pending(db) == []
    journal.write(db, request(1), None)  # a second copy of a recorded request: skipped
    open_ledger(db).close()
    assert len(ledger_rows(db, "requests")) == 2 and journal.pending(db) == []


def test_a_ledger_that_cannot_take_the_journal_keeps_it_and_refuses_requests(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    open_ledger(db).close()
    journal.write(db, request(1), None)
    with immutable(db):
        ledger = open_ledger(db)
        try:
            assert ledger.journal_waiting == 1
            with pytest.raises(LedgerError, match="read-only"):
                ledger.check_writable()
        finally:
            ledger.close()
    assert len(journal.pending(db)) == 1  # kept for the next command
    with open_ledger(db) as ledger:
        assert ledger.journal_waiting == 0
        ledger.check_writable()
    assert len(ledger_rows(db, "requests")) == 1 and journal.pending(db) == []


def test_an_entry_no_ledger_column_can_hold_is_skipped_not_replayed_forever(tmp_path: Path) -> None:
    """An entry an older version wrote from a provider's 1e30 tokens (hostile-4): opening
    the ledger once failed with "unexpected OverflowError" in every later command, `logs`
    included. It is now skipped like a torn file and kept for a person to see."""
    db = tmp_path / "l.db"
    record = request(1)
    huge = replace(record.calls[0], input_tokens=10**30, cost_nusd=3 * 10**33)
    path = journal.write(db, replace(record, calls=(huge,), cost_nusd=3 * 10**33), None, durable=True)
    journal.write(db, request(2), None, durable=True)
    assert [r.id for _, r, _ in journal.pending(db)] == [request(2).id]
    with open_ledger(db) as ledger:
        assert ledger.journal_waiting == 0
        ledger.check_writable()  # the bad entry does not block requests either
    assert [r["id"] for r in ledger_rows(db, "requests")] == [request(2).id]
    moved = tmp_path / "l.db.journal-refused" / path.name  # kept whole for a person to see
    assert moved.exists() and not path.exists()
    assert "does not fit the ledger" in moved.with_suffix(".reason").read_text(encoding="utf-8")


@pytest.mark.parametrize("ahead", [False, True], ids=["entry", "written-ahead"])
def test_the_journal_is_made_where_its_parent_does_not_exist_yet(tmp_path: Path, ahead: bool) -> None:
    """A PostgreSQL ledger's journal lives in the user data dir, which a user who never
    had a SQLite ledger does not have: the journal's mkdir (no parents) failed, and a paid
    answer the server refused was 'recorded nowhere'."""
    ledger = tmp_path / "home" / ".local" / "share" / "cascadeflow" / "postgres-0123abcd"
    record = request(7)
    if ahead:  # into this (live) process's log: recovered only once the process is gone
        journal.write_ahead(ledger, record, None)
        assert [p.name.startswith("ahead-") for p in journal.journal_dir(ledger).iterdir()] == [True]
    else:
        journal.write(ledger, record, None, durable=True)
        [(_, back, _)] = journal.pending(ledger)
        assert back == record
    assert stat.S_IMODE(journal.journal_dir(ledger).stat().st_mode) == 0o700


def test_an_entry_the_ledger_refuses_for_good_is_quarantined_whole_and_blocks_nothing(
        tmp_path: Path) -> None:
    """A journal entry the ledger refuses for good (here a shadow call whose request is
    not in this ledger: a FOREIGN KEY failure) kept every later request refused, for
    ever. It is moved aside, byte for byte (a paid call), with the ledger's reason beside
    it, and the ledger takes requests again."""
    from cascadeflow_cli.ledger.labels import ShadowOutcome

    db = tmp_path / "l.db"
    open_ledger(db).close()
    call = replace(request(5).calls[0], role="shadow", seq=1, id="nowhere-1", request_id="nowhere")
    path = journal.write(db, ShadowOutcome("nowhere", "ok", call=call), None, durable=True)
    content = path.read_bytes()
    journal.write(db, request(2), None, durable=True)  # a good one is still recorded
    with open_ledger(db) as ledger:
        assert ledger.journal_waiting == 0
        ledger.check_writable()
        [(moved, reason)] = ledger.journal_refused
    assert moved == tmp_path / "l.db.journal-refused" / "nowhere-1.json"
    assert moved.read_bytes() == content and not path.exists()
    assert "FOREIGN KEY" in reason
    assert "FOREIGN KEY" in moved.with_suffix(".reason").read_text(encoding="utf-8")
    assert [r["id"] for r in ledger_rows(db, "requests")] == [request(2).id]
    with open_ledger(db) as ledger:  # said once: the next command is quiet
        assert ledger.journal_refused == [] and journal.pending(db) == []
    assert moved.read_bytes() == content


def test_a_full_or_locked_ledger_keeps_its_entries_waiting_not_quarantined(tmp_path: Path) -> None:
    """Only a refusal that will never pass moves an entry aside: a read-only ledger (like a
    full disk or a lock) only delays it."""
    db = tmp_path / "l.db"
    open_ledger(db).close()
    journal.write(db, request(1), None, durable=True)
    with immutable(db), open_ledger(db) as ledger:
        assert ledger.journal_waiting == 1 and ledger.journal_refused == []
    assert not (tmp_path / "l.db.journal-refused").exists()
