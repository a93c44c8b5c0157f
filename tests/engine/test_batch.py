"""The batch runner in-process: real cascades against the loopback server, a real ledger.
Exactly once across interruptions, per-row errors, resume from the output and the ledger,
and the keep-alive transport behaving like the provider it stands in for."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cascadeflow_cli.config import parse_config
from cascadeflow_cli.engine.batch import (
    BadRow,
    BatchProgress,
    BatchRow,
    BatchRunner,
    line_key,
    parse_row,
    read_rows,
    scan_output,
)
from cascadeflow_cli.engine.cascade import Cascade
from cascadeflow_cli.engine.providers import ChatRequest
from cascadeflow_cli.errors import (
    InputError,
    LedgerError,
    NotRecordedError,
)
from cascadeflow_cli.ledger import journal
from cascadeflow_cli.ledger.backend import open_store
from cascadeflow_cli.ledger.batch_ids import committed_rows, external_id, load_request, start_batch
from cascadeflow_cli.ledger.budgets import BudgetConfig, set_budget
from cascadeflow_cli.ledger.db import Ledger, open_ledger
from cascadeflow_cli.replay.server import ModelBehavior, ReplayServer
from tests.conftest import GOOD_ANSWER, config_text, ledger_rows
from tests.pg_fixtures import table_rows

EXTRA = """
[[models]]
name = "broken"
model = "openai/gpt-broken"
api_base = "{url}"
retry_delay = 0.0
max_retries = 0
timeout = 5
input_cost_per_million = 1.0
output_cost_per_million = 1.0
"""
DOMAINS = """
[domains]
failing = ["broken"]

[budgets]
mode = "block"
"""


class Harness:
    """A config, a ledger and a runner factory writing results into a list."""

    def __init__(self, tmp_path: Path, server: ReplayServer, location: str | None = None) -> None:
        server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER))
        server.set_behavior("gpt-broken", ModelBehavior(status=500))
        broken = EXTRA.format(url=server.base_url)
        self.config = parse_config(config_text(server.base_url, extra_models=broken, extra=DOMAINS))
        self.db: Path | str = location or tmp_path / "ledger.db"  # a PostgreSQL URL, or SQLite's file
        self.ledger = open_store(self.db)
        self.batch_id = start_batch(self.ledger, tmp_path / "out.jsonl", tmp_path / "in.jsonl")
        self.lines: list[dict[str, Any]] = []

    def runner(self, **kw: Any) -> BatchRunner:
        return BatchRunner(
            lambda: Cascade(self.config, self.ledger),
            self.lines.append,
            external_id=lambda key: external_id(self.batch_id, key),
            **kw,
        )

    def ids(self) -> list[object]:
        return [line["id"] for line in self.lines]


def rows(n: int, start: int = 0) -> list[BatchRow]:
    return [BatchRow(i + 1, f"q{i}", f"What is the capital of France? ({i})") for i in range(start, n)]


@pytest.fixture
def harness(tmp_path: Path, server: ReplayServer) -> Harness:
    return Harness(tmp_path, server)


@pytest.fixture
def either(tmp_path: Path, server: ReplayServer, ledger_url: str) -> Iterator[Harness]:
    """The harness on each backend (``ledger_url``), for what --resume stands on."""
    harness = Harness(tmp_path, server, ledger_url)
    yield harness
    harness.ledger.close()


def test_every_row_answered_once_and_recorded_with_its_batch_id(either: Harness) -> None:
    progress = either.runner(concurrency=4).run(rows(20), total=20)
    assert sorted(either.ids()) == sorted(f"q{i}" for i in range(20))  # type: ignore[type-var]
    assert (progress.answered, progress.errors, progress.done) == (20, 0, 20)
    assert progress.cost_nusd == sum(round(Decimal(str(line["cost"])) * 10**9) for line in either.lines)
    requests = table_rows(either.db, "requests")
    assert sorted(r["external_id"] for r in requests) == sorted(f"{either.batch_id}:q{i}" for i in range(20))
    by_id = {line["id"]: line for line in either.lines}
    assert {r["id"] for r in requests} == {line["request_id"] for line in by_id.values()}
    assert by_id["q3"]["answer"] == GOOD_ANSWER and by_id["q3"]["draft_accepted"] is True


def test_per_row_errors_do_not_stop_the_batch(harness: Harness) -> None:
    set_budget(harness.ledger, "poor", BudgetConfig(daily=Decimal("0.000000001")))
    batch = [
        *rows(3),
        BatchRow(10, "fails", "Explain it.", domain="failing"),
        BatchRow(11, "blocked", "Explain it.", user="poor"),
        BadRow(12, "line 12: not valid JSON (Expecting value)"),
        BadRow(13, "line 13: 'query' must be a non-empty string", "empty"),
        BatchRow(14, "q1", "duplicate of q1"),
        *rows(6, 3),
    ]
    progress = harness.runner(concurrency=3).run(batch, total=len(batch))
    by_id = {(line["id"], line.get("line")): line for line in harness.lines}
    assert len(harness.lines) == len(batch)
    assert "HTTP 500" in by_id[("fails", None)]["error"]
    assert "poor" in by_id[("blocked", None)]["error"]
    assert by_id[(None, 12)] == {"id": None, "line": 12, "error": "line 12: not valid JSON (Expecting value)"}
    assert by_id[("empty", None)]["error"].startswith("line 13:")
    assert by_id[("q1", 14)]["error"] == "line 14: duplicate id (first on line 2)"
    assert (progress.answered, progress.errors) == (6, 5)
    statuses = {r["external_id"].split(":", 1)[1]: r["status"] for r in ledger_rows(harness.db, "requests")}
    assert statuses["fails"] == "error" and statuses["blocked"] == "blocked"


def test_rows_in_the_output_are_skipped_and_rows_in_the_ledger_recovered(either: Harness) -> None:
    either.runner(concurrency=4).run(rows(10), total=10)
    first = {line["id"]: line for line in either.lines}
    # a crash after the ledger committed q7..q9 but before their lines were written:
    kept = [line for line in either.lines if line["id"] not in ("q7", "q8", "q9")]
    either.lines[:] = kept
    committed = committed_rows(either.ledger, either.batch_id)

    def recover(row: BatchRow) -> dict[str, Any] | None:
        from cascadeflow_cli.engine.views import result_from_row

        request_id = committed.get(row.key)
        return (
            None
            if request_id is None
            else {"id": row.id, **result_from_row(load_request(either.ledger, request_id)).to_json()}
        )

    progress = either.runner(concurrency=4, recover=recover).run(
        rows(12), total=12, done={line["id"] for line in kept}
    )
    assert (progress.skipped, progress.recovered, progress.answered) == (7, 3, 2)
    assert sorted(either.ids()) == sorted(f"q{i}" for i in range(12))  # type: ignore[type-var]
    recovered = {line["id"]: line for line in either.lines[7:]}
    for key in ("q7", "q8", "q9"):
        assert recovered[key]["request_id"] == first[key]["request_id"]
        assert recovered[key]["answer"] == first[key]["answer"]
        assert recovered[key]["cost"] == first[key]["cost"]
    assert len(table_rows(either.db, "requests")) == 12  # nothing asked twice


def test_interrupt_writes_the_rows_in_flight_and_resume_finishes(
    either: Harness, server: ReplayServer
) -> None:
    server.set_behavior("gpt-4o-mini", ModelBehavior(answer=GOOD_ANSWER, latency_s=0.05))

    def interrupt(p: BatchProgress) -> None:
        if p.answered == 5 and not p.stopping:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        either.runner(concurrency=4, on_progress=interrupt).run(rows(40), total=40)
    written = either.ids()
    assert 5 <= len(written) < 40 and len(set(written)) == len(written)
    requests = table_rows(either.db, "requests")
    assert len(requests) == len(written)  # finished rows: in the output and the ledger, once
    either.runner(concurrency=4).run(rows(40), total=40, done=set(written))  # type: ignore[arg-type]
    assert sorted(either.ids()) == sorted(f"q{i}" for i in range(40))  # type: ignore[type-var]
    assert len(table_rows(either.db, "requests")) == 40


def test_a_ledger_that_cannot_be_written_stops_the_batch(harness: Harness) -> None:
    """The batch stops instead of paying for more answers it cannot record; the row that
    was paid for but not recorded is written all the same and waits in the side journal,
    which the next open of the ledger records (issue 11)."""

    class FullLedger(Ledger):
        def record(self, request: Any, reservation_id: str | None = None) -> None:
            if request.query.endswith("(6)"):
                raise LedgerError(f"{self.path}: cannot write ledger: database or disk is full")
            super().record(request, reservation_id)

    full = FullLedger(Path(harness.db))
    runner = BatchRunner(  # one worker: q6's fsynced journal entry could outlast a second one's 23 rows
        lambda: Cascade(harness.config, full),
        harness.lines.append,
        concurrency=1,
        external_id=lambda key: external_id(harness.batch_id, key),
    )
    with pytest.raises(NotRecordedError, match="disk is full"):
        runner.run(rows(30), total=30)
    assert "q6" in harness.ids() and len(harness.ids()) < 30
    recorded = {r["external_id"].split(":", 1)[1] for r in ledger_rows(harness.db, "requests")}
    assert set(harness.ids()) - recorded == {"q6"}
    [(_, waiting, _)] = journal.pending(Path(harness.db))
    assert waiting.status == "ok" and waiting.external_id.endswith(":q6")  # type: ignore[union-attr]
    full.close()
    open_ledger(Path(harness.db)).close()  # the next command replays the journal
    recorded = {r["external_id"].split(":", 1)[1] for r in ledger_rows(harness.db, "requests")}
    assert set(harness.ids()) == recorded and journal.pending(harness.db) == []


def test_concurrency_must_be_positive(harness: Harness) -> None:
    with pytest.raises(InputError):
        harness.runner(concurrency=0)


# --- input and output files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"id": "a", "query": "Q?"}', BatchRow(1, "a", "Q?")),
        ('{"id": 7, "query": "Q?", "user": "u", "domain": "code"}', BatchRow(1, 7, "Q?", "u", "code")),
        ('{"query": "no id"}', BatchRow(1, 1, "no id")),
        ("not json", BadRow(1, "line 1: not valid JSON (Expecting value)")),
        ('["a list"]', BadRow(1, "line 1: expected a JSON object with a 'query'")),
        ('{"id": true, "query": "Q"}', BadRow(1, "line 1: 'id' must be a non-empty string or an integer")),
        ('{"id": "a", "query": "  "}', BadRow(1, "line 1: 'query' must be a non-empty string", "a")),
        ('{"id": "a", "query": "Q", "user": 5}', BadRow(1, "line 1: 'user' must be a non-empty string", "a")),
        # billed to "b" (the last one wins in Python; the first in other readers)
        ('{"id": "a", "query": "Q", "user": "a", "user": "b"}',
         BadRow(1, "line 1: not valid JSON (key 'user' appears twice in one object)")),
    ],
)
def test_parse_row(text: str, expected: BatchRow | BadRow) -> None:
    assert parse_row(text, 1) == expected


def test_read_rows_reports_bad_lines_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"id": "a", "query": "Q1"}\r\n\n{oops\r\n{"id": "b", "query": "Q\xff"}\n'
        b'{"id": "c", "query": "Q3"}'
    )
    items = list(read_rows(path))
    assert [type(i).__name__ for i in items] == ["BatchRow", "BadRow", "BadRow", "BatchRow"]
    assert items[0] == BatchRow(1, "a", "Q1") and items[3] == BatchRow(5, "c", "Q3")
    assert items[1].line == 3 and items[2] == BadRow(4, "line 4: not UTF-8 text")


def test_scan_output_cuts_a_torn_last_line_and_refuses_foreign_files(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    good = '{"id": "a", "answer": "x"}\n{"id": 7, "error": "e"}\n{"id": null, "line": 9, "error": "e"}\n'
    out.write_text(good + '{"id": "b", "answ', encoding="utf-8")
    keys, length = scan_output(out)
    assert keys == {"a", "7", line_key(9)} and length == len(good.encode())
    out.write_text('{"id": "a"}\nnot a result\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"out\.jsonl:2: not a result line"):
        scan_output(out)


# --- the keep-alive transport ---------------------------------------------------------------

REQUEST = ChatRequest([{"role": "user", "content": "Say hello."}], max_tokens=64)


def test_workers_each_get_their_own_cascade(harness: Harness) -> None:
    seen: set[int] = set()
    lock = threading.Lock()

    def make() -> Any:
        cascade = Cascade(harness.config, harness.ledger)
        with lock:
            seen.add(threading.get_ident())
        return cascade

    BatchRunner(make, harness.lines.append, concurrency=3).run(rows(12), total=12)
    assert 1 <= len(seen) <= 3 and len(harness.lines) == 12


def test_result_lines_are_json_serialisable(harness: Harness) -> None:
    harness.runner(concurrency=2).run(rows(2), total=2)
    for line in harness.lines:
        assert json.loads(json.dumps(line)) == line
