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

Functions here take any LedgerStore (ledger/storage.py); the SQLite backend's SQL for
them is in ledger/sqlite_store.py. ``CallSignals`` is declared in ledger/schema.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.ledger.schema import CallSignals

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.schema import CallRecord
    from cascadeflow_cli.ledger.storage import LedgerStore

SOURCES = ("feedback", "shadow")
__all__ = ["SOURCES", "CallSignals", "ShadowOutcome", "calibration_rows", "labels_for", "next_seq",
           "record_feedback", "record_shadow"]


def record_feedback(ledger: LedgerStore, request_id: str, good: bool, note: str | None = None) -> bool:
    """Label a request's final answer good or bad. True when it replaced an earlier label.
    An unknown request id is an InputError and writes nothing."""
    return ledger.record_feedback(request_id, good, note)


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


def record_shadow(ledger: LedgerStore, outcome: ShadowOutcome, reservation_id: str | None) -> None:
    """The shadow call, its cost added to the request (the spend triggers count it against
    the user's budgets), its label, and its reservation settled: one transaction."""
    ledger.record_shadow(outcome, reservation_id)


def next_seq(ledger: LedgerStore, request_id: str) -> int:
    return ledger.next_seq(request_id)


def labels_for(ledger: LedgerStore, request_id: str) -> list[dict[str, Any]]:
    return ledger.labels_for(request_id)


def calibration_rows(ledger: LedgerStore) -> list[dict[str, Any]]:
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
    out: list[dict[str, Any]] = []
    for r in ledger.labelled_drafts():
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
