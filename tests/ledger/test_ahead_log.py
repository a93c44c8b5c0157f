"""The write-ahead logs of the side journal (ledger/ahead_log.py): a request written ahead
by a process that dies is recovered by the next open of the ledger, once, in its last
version; a live process's log is never taken; a settled log is deleted at exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from cascadeflow_cli.ledger import ahead_log, journal
from cascadeflow_cli.ledger.db import open_ledger
from tests.conftest import ledger_rows
from tests.ledger.test_db import request

pytestmark = pytest.mark.skipif(ahead_log.fcntl is None, reason="flock: not on this platform")

CHILD = """
import os, sys, time
from dataclasses import replace
from pathlib import Path
from cascadeflow_cli.ledger import journal
from cascadeflow_cli.ledger.db import open_ledger
from tests.ledger.test_db import request

db, mode = Path(sys.argv[1]), sys.argv[2]
first = request(1)
journal.write_ahead(db, replace(first, status="interrupted", answer=None), None)  # a draft, escalating
journal.write_ahead(db, first, "res-1")  # then its final record
journal.write_ahead(db, request(2), None)
with open_ledger(db) as ledger:
    ledger.record(request(2))
journal.discard(db, request(2).id)  # committed: its line stays in the log, settled
if mode == "torn":  # a line cut off by a full disk, after the good ones
    log = next(journal.journal_dir(db).glob("ahead-*.log"))
    with log.open("ab") as fh:
        fh.write(b'{"v": 1, "reservation_id": null, "requ')
print(request(1).id, flush=True)
if mode == "live":
    sys.stdin.readline()  # alive until told
    sys.exit(0)
if mode == "settled":
    journal.discard(db, first.id)
    sys.exit(0)  # a clean exit: its log holds nothing unsettled
os.kill(os.getpid(), 9)
"""


def _child(db: Path, mode: str, **kwargs: object) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), str(db), mode], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE,
                            text=True, **kwargs)  # type: ignore[call-overload]


@pytest.mark.parametrize("mode", ["killed", "torn"])
def test_a_dead_processs_log_is_recovered_once_in_its_last_version(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "l.db"
    open_ledger(db).close()
    proc = _child(db, mode)
    request_id = proc.communicate(timeout=60)[0].strip()
    assert proc.returncode == -9
    assert list(journal.journal_dir(db).glob("ahead-*.log"))  # left behind by the dead process
    entries = {record.id: (path, record, reservation) for path, record, reservation in journal.pending(db)}
    assert len(entries) == 2  # the committed one comes back too: replaying it is a no-op
    path, record, reservation = entries[request_id]
    assert record.status == "ok" and reservation == "res-1"  # its last line won
    assert path.name == f"{request_id}.json"
    assert not list(journal.journal_dir(db).glob("ahead-*.log"))
    with open_ledger(db):  # the next open records it
        pass
    rows = {row["id"]: row for row in ledger_rows(db, "requests")}
    assert len(rows) == 2 and rows[request_id]["status"] == "ok"
    assert journal.pending(db) == []


def test_a_live_processs_log_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    open_ledger(db).close()
    proc = _child(db, "live", stdin=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        in_flight = proc.stdout.readline().strip()
        assert journal.pending(db) == []  # its requests are in flight, not lost
        with open_ledger(db):
            pass
        assert in_flight not in {row["id"] for row in ledger_rows(db, "requests")}
        [log] = journal.journal_dir(db).glob("ahead-*.log")
        assert len(log.read_bytes().splitlines()) == 3
    finally:
        proc.communicate("\n", timeout=60)
    assert proc.returncode == 0
    # exited with a request unsettled: its log is kept for the next open
    assert {record.status for _, record, _ in journal.pending(db)} == {"ok"}


def test_a_settled_log_is_deleted_at_exit(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    proc = _child(db, "settled")
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert list(journal.journal_dir(db).glob("ahead-*")) == []


def test_a_durable_entry_outranks_the_log(tmp_path: Path) -> None:
    """A commit that failed rewrites the request as a file of its own (fsynced): that is
    its entry, the log's lines of it are settled, and a discard deletes the file."""
    db = tmp_path / "l.db"
    record = request(7)
    journal.write_ahead(db, replace(record, status="interrupted"), None)
    path = journal.write(db, record, None, durable=True)
    [(found, back, _)] = journal.pending(db)
    assert found == path and back == record
    journal.discard(db, record.id)
    assert not path.exists() and journal.pending(db) == []


def test_a_full_log_is_left_for_a_new_one_and_deleted_when_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "l.db"
    monkeypatch.setattr(ahead_log, "MAX_LOG_BYTES", 1)  # every request starts a new log
    records = [request(i) for i in range(3)]
    for record in records:
        journal.write_ahead(db, record, None)
    logs = sorted(journal.journal_dir(db).glob("ahead-*.log"))
    assert len(logs) == 3
    assert [json.loads(p.read_bytes())["request"]["id"] for p in logs] == [r.id for r in records]
    journal.discard(db, records[0].id)
    assert not logs[0].exists() and logs[1].exists()  # retired and settled: deleted
    journal.discard(db, records[2].id)
    assert logs[2].exists()  # the current one stays until exit
    journal.discard(db, records[1].id)
    assert not logs[1].exists()


IN_FLIGHT_CHILD = """
import os, sys
from dataclasses import replace
from pathlib import Path
from cascadeflow_cli.ledger import journal
from tests.ledger.test_db import request

db = Path(sys.argv[1])


def head(record):
    return {"id": record.id, "ts": record.ts, "user": record.user, "status": "interrupted",
            "error": "cut", "query": record.query, "answer": None, "domain": None,
            "domain_confidence": None, "external_id": None, "enforcement": "allow",
            "enforcement_message": None}


def sent(record, seq, cost):
    return journal.plain_call(replace(record.calls[0], id=f"{record.id}-{seq}", seq=seq, role="verifier",
                                      model="big", status="error", cost_nusd=cost, error_type="CallInFlight"))


draft, alone, answered = request(1), request(2), request(3)
escalating = replace(draft, status="interrupted", answer=None, model="mini", draft_model="mini")
journal.write_ahead(db, escalating, "res-1")  # a draft paid for, refused
journal.write_in_flight(db, head(draft), sent(draft, 1, 1000), "res-1")  # then the verifier sent
journal.write_in_flight(db, head(alone), sent(alone, 0, 2000), "res-2")  # its first call in flight
journal.write_in_flight(db, head(answered), sent(answered, 0, 3000), None)
journal.write_ahead(db, answered, None)  # answered after: its whole line supersedes
print(draft.id, alone.id, answered.id, flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_call_in_flight_in_a_dead_processs_log_joins_its_request(tmp_path: Path) -> None:
    """journal.write_in_flight: the short line of a call about to be sent. Recovered, it is
    added to its request's last whole line, or becomes a request of its own; a whole line
    after it wins."""
    db = tmp_path / "l.db"
    open_ledger(db).close()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(IN_FLIGHT_CHILD), str(db)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE, text=True)
    draft, alone, answered = proc.communicate(timeout=60)[0].split()
    assert proc.returncode == -9
    entries = {record.id: (record, reservation) for _, record, reservation in journal.pending(db)}
    record, reservation = entries[draft]
    assert reservation == "res-1" and record.status == "interrupted" and record.error == "cut"
    assert [(c.role, c.cost_nusd) for c in record.calls] == [("draft", 123), ("verifier", 1000)]
    assert record.cost_nusd == 1123 and record.model == "big" and record.draft_model == "mini"
    assert record.escalated and not record.draft_accepted and record.savings_nusd == 0
    record, reservation = entries[alone]
    assert reservation == "res-2" and record.status == "interrupted" and record.query == "q"
    assert [(c.id, c.cost_nusd) for c in record.calls] == [(f"{alone}-0", 2000)] and record.cost_nusd == 2000
    assert entries[answered][0].status == "ok" and entries[answered][0].cost_nusd == 123
    with open_ledger(db):  # recorded, once
        pass
    with open_ledger(db):
        pass
    costs = {row["id"]: row["cost_nusd"] for row in ledger_rows(db, "requests")}
    assert costs == {draft: 1123, alone: 2000, answered: 123}
    assert len(ledger_rows(db, "calls")) == 4
