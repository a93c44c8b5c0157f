"""`cascade calibrate --from-ledger`: a stand-in until the calibrated model's command is
merged. It fits the rows of ``ledger.labels.calibration_rows`` (feedback and shadow labels,
with the drafts' live features) with ``quality.calibrate.calibrate_rows``.

TODO(issue 9, merge): quality-model's `cascade calibrate` (cli/calibrate_cmd.py) already
has ``--from-ledger`` and calls ``ledger.labels.calibration_rows``: keep that command,
delete this module and its registration in app.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cascadeflow_cli.cli.context import state
from cascadeflow_cli.errors import InputError


def calibrate(
    file: Annotated[Path | None, typer.Argument(help="Labelled rows (JSONL); or use --from-ledger.")] = None,
    from_ledger: Annotated[
        bool, typer.Option("--from-ledger", help="Fit on the ledger's feedback and shadow labels.")
    ] = False,
    target_quality: Annotated[
        float, typer.Option("--target-quality", help="Share of the verifier's quality to keep.")
    ] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fit the quality calibration on the ledger's labels (see the module docstring)."""
    from cascadeflow_cli.ledger.labels import calibration_rows

    if (file is None) == (not from_ledger):
        raise InputError("give a FILE.jsonl of labelled drafts, or --from-ledger (not both)")
    if file is not None:
        raise InputError("this build calibrates only --from-ledger (FILE rows need the calibrated model)")
    if not 0 < target_quality <= 1:
        raise InputError(f"--target-quality must be within (0, 1], got {target_quality:g}")
    ctx = state()
    rows = calibration_rows(ctx.ledger())
    if not rows:
        raise InputError("the ledger has no labelled drafts yet (cascade feedback, or [quality] shadow_rate)")
    try:
        from cascadeflow_cli.quality.calibrate import (  # type: ignore[import-not-found]
            CalibrationDataError,
            calibrate_rows,
        )
    except ImportError:
        raise InputError(
            f"{len(rows)} labelled drafts, but this build has no calibrated quality model"
        ) from None
    try:
        report = calibrate_rows(rows, target_quality=target_quality)
    except CalibrationDataError as exc:
        raise InputError(f"the ledger: {exc}") from None
    source = ctx.config.source
    path = (source.parent if source else Path.cwd()) / "calibration.json"
    report.calibration.write(path)
    data = {"path": str(path), "rows": report.rows, "auroc": report.auroc, "threshold": report.threshold}
    sys.stdout.write(json.dumps(data) + "\n" if as_json else f"wrote {path} ({report.rows} rows)\n")
