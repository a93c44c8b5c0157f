"""Quality labels from use: a user's `cascade feedback`, the shadow verifier's agreement,
and the live signals (token log-probabilities, sample agreement) of draft calls.

Tables (migration ``005_quality_labels`` in ledger/schema.py, which also gives ``requests``
the columns ``quality_threshold`` and ``calibrated``):

- ``quality_labels``: one row per (request, source). ``source`` is ``feedback`` (the user
  said good or bad about the request's final answer) or ``shadow`` (the verifier also
  answered an accepted draft in the background; ``correct`` says whether the two final
  answers agreed, ``agreement`` how much, ``method`` how it was measured). A second
  feedback label for the same request *replaces* the first: the user correcting
  themselves, not a second vote; the row keeps when it was first and last given.
- ``call_signals``: the live signals of a draft call, kept for `calibrate --from-ledger`.

Functions here take a :class:`~cascadeflow_cli.ledger.db.Ledger`; none is imported at
module level, so ``db.py`` can import this module without a cycle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.ledger.schema import CallSignals

if TYPE_CHECKING:
    import sqlite_utils

    from cascadeflow_cli.ledger.db import Ledger
    from cascadeflow_cli.ledger.records import CallRecord

SOURCES = ("feedback", "shadow")


def insert_signals(db: sqlite_utils.Database, request_id: str, signals: Sequence[CallSignals]) -> None:
    """Inside the caller's request transaction."""
    rows = [
        (
            s.call_id,
            request_id,
            None if s.logprobs is None else json.dumps([round(x, 4) for x in s.logprobs]),
            s.samples,
            s.agreement,
            json.dumps(dict(s.features)) if s.features else None,
        )
        for s in signals
    ]
    db.conn.executemany(
        "insert into call_signals (call_id, request_id, logprobs, samples, agreement, features) "
        "values (?, ?, ?, ?, ?, ?)",
        rows,
    )


def _upsert(db: sqlite_utils.Database, row: dict[str, Any]) -> bool:
    """Insert or replace the (request, source) label; True when one was replaced."""
    key = [row["request_id"], row["source"]]
    old = list(db.query("select created_at from quality_labels where request_id = ? and source = ?", key))
    if old:
        row = {**row, "created_at": old[0]["created_at"]}
        db.execute("delete from quality_labels where request_id = ? and source = ?", key)
    names = ", ".join(row)
    db.execute(
        f"insert into quality_labels ({names}) values ({', '.join('?' * len(row))})", list(row.values())
    )
    return bool(old)


def record_feedback(ledger: Ledger, request_id: str, good: bool, note: str | None = None) -> bool:
    """Label a request's final answer good or bad. True when it replaced an earlier label.
    An unknown request id is an InputError and writes nothing."""
    now = format_ts(ledger.clock.now())
    with ledger.write() as db:
        found = list(db.query("select id, status from requests where id = ?", [request_id]))
        if not found:
            raise InputError(f"no request {request_id!r} in the ledger {ledger.path}")
        if found[0]["status"] != "ok":
            raise InputError(f"request {request_id!r} has no answer to label (status {found[0]['status']})")
        return _upsert(
            db,
            {
                "request_id": request_id,
                "source": "feedback",
                "correct": int(good),
                "note": note,
                "created_at": now,
                "updated_at": now,
            },
        )


@dataclass(frozen=True)
class ShadowOutcome:
    """What one shadow verification produced, ready for the ledger."""

    request_id: str
    status: str  # "ok" | "error" | "blocked"
    call: CallRecord | None = None  # the verifier call, when one was made (failed ones too)
    correct: bool | None = None  # the draft agreed with the verifier
    agreement: float | None = None
    method: str | None = None
    error: str | None = None


def record_shadow(ledger: Ledger, outcome: ShadowOutcome, reservation_id: str | None) -> None:
    """The shadow call, its cost added to the request (the spend triggers count it against
    the user's budgets), its label, and its reservation settled: one transaction."""
    now = format_ts(ledger.clock.now())
    with ledger.write() as db:
        conn = db.conn
        if reservation_id is not None:
            conn.execute("delete from reservations where id = ?", [reservation_id])
        call_id = None
        if outcome.call is not None:
            from cascadeflow_cli.ledger.db import _call_row, _insert_sql

            row = _call_row(outcome.call)
            conn.execute(_insert_sql("calls", tuple(row)), list(row.values()))
            call_id = outcome.call.id
            cost = outcome.call.cost_nusd
            if cost:
                conn.execute(
                    "update requests set cost_nusd = cost_nusd + ?, savings_nusd = savings_nusd - ? "
                    "where id = ?",
                    [cost, cost, outcome.request_id],
                )
        _upsert(
            db,
            {
                "request_id": outcome.request_id,
                "source": "shadow",
                "correct": None if outcome.correct is None else int(outcome.correct),
                "agreement": outcome.agreement,
                "method": outcome.method,
                "note": outcome.error,
                "status": outcome.status,
                "call_id": call_id,
                "created_at": now,
                "updated_at": now,
            },
        )


def next_seq(ledger: Ledger, request_id: str) -> int:
    rows = list(
        ledger.db.query(
            "select coalesce(max(seq), -1) + 1 as n from calls where request_id = ?", [request_id]
        )
    )
    return int(rows[0]["n"])


def labels_for(ledger: Ledger, request_id: str) -> list[dict[str, Any]]:
    return list(
        ledger.db.query("select * from quality_labels where request_id = ? order by source", [request_id])
    )


def calibration_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """Rows for `cascade calibrate --from-ledger`, shaped like a calibration file's:
    ``{"id", "query", "response", "correct", "verifier_correct"?, "domain"?,
    "finish_reason"?, "label_source"}`` plus the draft's live features as the quality check
    saw them (``logprob_mean``, ``logprob_min``, ``logprob_p10``, ``logprob_p25``,
    ``agreement``: the calibrated model's LIVE_SIGNALS), when it had any.

    ``response`` is the request's first draft. Its label, the user's word first:
    - feedback on a request whose draft was accepted labels the draft itself;
    - feedback on an escalated request labels the verifier's answer (``verifier_correct``)
      but says nothing about the draft, so alone it makes no row;
    - a shadow verdict (the draft agreed with the verifier or not) labels the draft,
      taking the verifier as the reference (``verifier_correct`` true unless the user
      said the accepted draft was bad while it agreed with the verifier: then both are wrong).
    Requests without a stored draft answer (``store_prompts = false``) are skipped."""
    sql = """
        select r.id, r.query, r.domain, r.draft_accepted, c.answer, c.finish_reason, c.id as call_id,
               f.correct as feedback, s.correct as shadow, s.status as shadow_status,
               g.features
        from requests r
        join calls c on c.request_id = r.id and c.seq = 0 and c.role = 'draft' and c.status = 'ok'
        left join quality_labels f on f.request_id = r.id and f.source = 'feedback'
        left join quality_labels s on s.request_id = r.id and s.source = 'shadow'
        left join call_signals g on g.call_id = c.id
        where r.status = 'ok' and (f.correct is not null or s.correct is not null)
        order by r.ts, r.rowid
    """
    out: list[dict[str, Any]] = []
    for r in ledger.db.query(sql):
        if r["query"] is None or r["answer"] is None:
            continue
        accepted = bool(r["draft_accepted"])
        feedback = None if r["feedback"] is None else bool(r["feedback"])
        shadow = None if r["shadow"] is None else bool(r["shadow"])
        row: dict[str, Any] = {"id": r["id"], "query": r["query"], "response": r["answer"]}
        if accepted and feedback is not None:
            row["correct"] = feedback
            row["label_source"] = "feedback"
            if shadow is not None:  # agreeing answers share a verdict; differing ones cannot both be right
                row["verifier_correct"] = feedback if shadow else not feedback
        elif shadow is not None:
            row["correct"] = shadow
            row["verifier_correct"] = True
            row["label_source"] = "shadow"
        else:
            continue  # feedback on an escalated request judged the verifier's answer, not this draft
        if r["domain"]:
            row["domain"] = r["domain"]
        if r["finish_reason"]:
            row["finish_reason"] = r["finish_reason"]
        if r["features"]:
            row.update(json.loads(r["features"]))
        out.append(row)
    return out
