"""`cascade calibrate FILE.jsonl`: fit the quality model on labelled drafts and write the
calibration file that `[quality] calibration` (and `quality check --calibration`) read."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cascadeflow_cli.cli.context import app_context
from cascadeflow_cli.cli.inputs import input_lines, json_object, kind, row_id, string_field
from cascadeflow_cli.config import check_domain
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    from cascadeflow_cli.config import AppConfig
    from cascadeflow_cli.quality.calibrate import CalibrationReport, Prices

_ROW_FIELDS = '{"query", "response", "correct", "verifier_correct"?, "domain"?, "finish_reason"?, "id"?}'


def calibrate(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(help=f"JSONL rows: {_ROW_FIELDS}.", show_default=False)
    ] = None,
    target_quality: Annotated[
        float,
        typer.Option("--target-quality", help="Keep at least this share of the verifier's quality (0 to 1)."),
    ] = 0.95,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="Where to write the calibration (default "
            "calibration.json next to the config in use, else here).",
        ),
    ] = None,
    prices: Annotated[
        str | None,
        typer.Option(
            "--prices",
            help="IN,OUT,VIN,VOUT: draft and verifier prices "
            "in USD per million tokens (default: the configured chain's).",
        ),
    ] = None,
    from_ledger: Annotated[
        bool,
        typer.Option(
            "--from-ledger",
            help="Fit on the labels recorded in the ledger (cascade feedback, shadow checks).",
        ),
    ] = False,
    execute_code: Annotated[
        bool | None,
        typer.Option(
            "--execute-code/--no-execute-code",
            help="Also run each response's Python against its own examples in a sandbox "
            "(a feature for code; scoring with that calibration then runs drafts' code too). "
            "Default: [quality] execute_code; unset, on where the kernel sandbox is available.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Fit the calibrated quality check on labelled drafts: prints the cross-validated
    AUROC, the expected quality and savings at the chosen threshold, and a reliability table."""
    from cascadeflow_cli.usecases.calibrate import calibrate as fit
    from cascadeflow_cli.usecases.calibrate import configured_prices, ledger_label_rows

    if math.isnan(target_quality) or not 0.0 < target_quality <= 1.0:
        raise InputError(f"--target-quality must be within (0, 1], got {target_quality:g}")
    if (file is None) == (not from_ledger):
        raise InputError("give a FILE.jsonl of labelled drafts, or --from-ledger (not both)")
    context = app_context(ctx)
    config = context.config
    context.refuse_ledger_as_output(output)  # it would replace the ledger with a calibration
    chosen = parse_prices(prices) if prices is not None else configured_prices(config)
    if from_ledger:
        rows = ledger_label_rows(context.ledger(read_only=True))
        origin = "the ledger"
    else:
        assert file is not None
        rows = read_rows(file, config)
        origin = str(file)
    from cascadeflow_cli.quality import sandbox

    asked = execute_code if execute_code is not None else config.quality.execute_code
    execute = sandbox.execution_enabled(asked)
    if asked is None and not execute:
        sys.stderr.write(f"note: drafts' code is not run: {sandbox.support().reason}; --execute-code runs it "
                         "with process limits only\n")
    elif execute and (line := sandbox.note_once()):
        sys.stderr.write(line + "\n")  # here, once, before the feature workers fork
    done = fit(config, rows, origin, target_quality=target_quality, prices=chosen, output=output,
               execute_code=execute)
    if as_json:
        sys.stdout.write(json.dumps(report_json(done.report, done.path)) + "\n")
    else:
        _print_report(done.report, done.path)


def report_json(report: CalibrationReport, path: Path) -> dict[str, Any]:
    """The CLI.md object of `cascade calibrate --json`."""
    return {
        "path": str(path),
        "rows": report.rows,
        "auroc": round(report.auroc, 4),
        "threshold": report.threshold,
        "thresholds_by_domain": report.thresholds_by_domain,
        "expected_quality": round(report.expected_quality, 4),
        "expected_savings": None if report.expected_savings is None else round(report.expected_savings, 4),
        "reliability": [
            {"bin": b.bin, "predicted": b.predicted, "observed": b.observed, "n": b.n}
            for b in report.reliability
        ],
    }


# --------------------------------------------------------------------------- input


def read_rows(path: Path, config: AppConfig) -> list[dict[str, Any]]:
    """Every row of a labelled JSONL file, checked (a ``domain`` must be one ``config``
    knows: a threshold fitted for a name no request can carry is never used); InputError
    naming ``FILE:LINE``."""
    rows: list[dict[str, Any]] = []
    seen: dict[Any, int] = {}
    for line, text in input_lines(path):
        where = f"{path}:{line}"
        data = json_object(text, where, _ROW_FIELDS)
        string_field(data, "query", where, required=True)
        string_field(data, "response", where, required=True)
        domain = string_field(data, "domain", where, blank=False)
        if domain is not None:
            check_domain(config, domain, f"{where}: ")
        string_field(data, "finish_reason", where)
        rid = row_id(data, where)
        for key, required in (("correct", True), ("verifier_correct", False)):
            value = data.get(key)
            if value is None and not required:
                continue
            if not isinstance(value, bool):
                got = "missing" if key not in data else f"{kind(value)} {json.dumps(value)[:20]}"
                raise InputError(f"{where}: {key!r} must be true or false, got {got}")
        if rid is not None:
            if rid in seen:
                raise InputError(f"{where}: duplicate id {rid!r} (first on line {seen[rid]})")
            seen[rid] = line
        rows.append(data)
    return rows


def parse_prices(text: str) -> Prices:
    from cascadeflow_cli.quality.calibrate import Prices

    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) and v >= 0 for v in values):
        raise InputError(
            f"--prices must be IN,OUT,VIN,VOUT (four numbers >= 0, USD per million tokens), got {text!r}"
        )
    if values[2] + values[3] <= 0:
        raise InputError("--prices: the verifier's prices (VIN,VOUT) cannot both be 0")
    return Prices(*values)


# --------------------------------------------------------------------------- output


def _print_report(report: CalibrationReport, path: Path) -> None:
    from rich.text import Text

    from cascadeflow_cli.cli.context import stdout_console
    from cascadeflow_cli.cli.render.quality import reliability_table

    console = stdout_console()
    domains = ", ".join(f"{d} {t:.3f}" for d, t in sorted(report.thresholds_by_domain.items()))
    savings = (
        f"{report.expected_savings:.1%}"
        if report.expected_savings is not None
        else "n/a (give --prices IN,OUT,VIN,VOUT or configure the chain's prices)"
    )
    lines = [
        (
            "rows",
            f"{report.rows} (drafts good {report.draft_quality:.1%}, verifier {report.verifier_quality:.1%})",
        ),
        ("AUROC", f"{report.auroc:.3f} (cross-validated)"),
        ("threshold", f"{report.threshold:.3f}" + (f" (by domain: {domains})" if domains else "")),
        ("accepted", f"{report.acceptance:.1%} of drafts"),
        (
            "quality",
            f"{report.expected_quality:.1%} of the verifier's "
            f"(target {report.calibration.target_quality:.0%})",
        ),
        ("savings", savings),
    ]
    for label, value in lines:
        console.print(Text.assemble((f"{label:<10}", "bold"), value))
    console.print(reliability_table(report))
    console.print(Text(f"wrote {path}", style="dim"))
