"""`cascade calibrate --from-ledger`: calibration rows from the labels of use (feedback
and shadow verification, ledger/labels.py), fitted by the calibrated model.

TODO(issue 9, merge): quality-model's `cascade calibrate FILE.jsonl` is the command; fold
``--from-ledger`` (and ``--rows-output``) into it, feeding :func:`ledger_rows` to the same
``calibrate_rows(rows, target_quality=...)`` its FILE rows go to, and drop the stand-in
command below. Until then this command fits through :func:`fit_rows` when
``cascadeflow_cli.quality.calibrate.calibrate_rows`` exists, else says it cannot.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cascadeflow_cli.cli.context import state
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.db import Ledger


def ledger_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """The ledger's labelled drafts as calibration rows; their live signals (raw token
    log-probabilities, sample agreement) become the model's live features."""
    from cascadeflow_cli.ledger.labels import calibration_rows
    from cascadeflow_cli.quality.live_signals import live_signals

    rows = []
    for row in calibration_rows(ledger):
        logprobs = row.pop("logprobs", None)
        agreement = row.pop("agreement", None)
        rows.append({**row, **live_signals(logprobs, agreement)})
    return rows


def fit_rows(rows: list[dict[str, Any]], target_quality: float) -> Any:
    """quality-model's fit. TODO(issue 9, merge): call ``calibrate_rows`` directly."""
    try:
        from cascadeflow_cli.quality.calibrate import (  # type: ignore[import-not-found]
            CalibrationDataError,
            calibrate_rows,
        )
    except ImportError:
        raise InputError(
            "this build has no calibrated quality model yet: write the rows with --rows-output "
            "and fit them with `cascade calibrate FILE` once it has"
        ) from None
    try:
        return calibrate_rows(rows, target_quality=target_quality)
    except CalibrationDataError as exc:
        raise InputError(f"ledger labels: {exc}") from None


def calibrate(
    file: Annotated[Path | None, typer.Argument(help="Labelled rows (JSONL); or use --from-ledger.")] = None,
    from_ledger: Annotated[
        bool, typer.Option("--from-ledger", help="Fit on the ledger's feedback and shadow labels.")
    ] = False,
    rows_output: Annotated[
        Path | None, typer.Option("--rows-output", help="Write the ledger's labelled rows (JSONL) here.")
    ] = None,
    target_quality: Annotated[
        float | None, typer.Option("--target-quality", help="Share of the verifier's quality to keep.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fit the quality calibration (stand-in for quality-model's command: see the module)."""
    if file is not None and from_ledger:
        raise InputError("give FILE or --from-ledger, not both")
    if not from_ledger:
        raise InputError("this build calibrates only --from-ledger (FILE rows need the calibrated model)")
    ctx = state()
    target = target_quality if target_quality is not None else ctx.config.quality.target_quality
    if not 0 < target <= 1:
        raise InputError(f"--target-quality must be above 0 and at most 1, got {target:g}")
    rows = ledger_rows(ctx.ledger())
    if rows_output is not None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        try:
            rows_output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{rows_output}: cannot write: {exc.strerror or exc}") from None
        good = sum(1 for r in rows if r["correct"])
        summary = {"path": str(rows_output), "rows": len(rows), "good": good, "bad": len(rows) - good}
        if as_json:
            sys.stdout.write(json.dumps(summary) + "\n")
        else:
            bad = len(rows) - good
            sys.stderr.write(f"wrote {len(rows)} labelled rows ({good} good, {bad} bad) to {rows_output}\n")
        return
    if not rows:
        raise InputError("the ledger has no labelled drafts yet (cascade feedback, or [quality] shadow_rate)")
    report = fit_rows(rows, target)
    source = ctx.config.source
    path = (source.parent if source else Path.cwd()) / "calibration.json"
    report.calibration.write(path)
    data = {"path": str(path), "rows": report.rows, "auroc": report.auroc, "threshold": report.threshold}
    sys.stdout.write(json.dumps(data) + "\n")
