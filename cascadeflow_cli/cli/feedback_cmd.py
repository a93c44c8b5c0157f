"""`cascade feedback REQUEST_ID good|bad [--note TEXT]`: a label for a request's answer.

A second label for the same request replaces the first (the latest word counts); the
labels feed `cascade calibrate --from-ledger` and the measured quality in `cascade usage`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cascadeflow_cli.cli.context import app_context
from cascadeflow_cli.errors import InputError

VERDICTS = ("good", "bad")


def feedback(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request's id (from `ask --json` or `logs --json`).")],
    verdict: Annotated[str, typer.Argument(help="good or bad: was the answer good enough?")],
    note: Annotated[str | None, typer.Option("--note", help="A short note kept with the label.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the recorded label as JSON.")] = False,
) -> None:
    """Label a request's answer good or bad (a second label replaces the first)."""
    from cascadeflow_cli.ledger.labels import record_feedback

    word = verdict.strip().lower()
    if word not in VERDICTS:
        raise InputError(f"the verdict must be good or bad, got {verdict!r}")
    if not request_id.strip():
        raise InputError("the request id is empty")
    replaced = record_feedback(app_context(ctx).ledger(), request_id.strip(), word == "good", note)
    if as_json:
        data = {"request_id": request_id.strip(), "label": word, "note": note, "replaced": replaced}
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        sys.stderr.write(
            f"{'replaced the label of' if replaced else 'labelled'} {request_id.strip()}: {word}\n"
        )
