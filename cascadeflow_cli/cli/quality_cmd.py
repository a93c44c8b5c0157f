"""`cascade quality check`: score an answer, or a JSONL file of them, with the rule-based
validator the cascade applies to drafts. Needs no config file and no ledger."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cascadeflow_cli.cli.context import app_context
from cascadeflow_cli.cli.inputs import input_lines, json_object, row_id, string_field
from cascadeflow_cli.cli.options import check_domain as domain_given
from cascadeflow_cli.config import check_domain
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:

    from cascadeflow_cli.config import AppConfig, QualityConfig
    from cascadeflow_cli.quality import QualityResult, QualityValidator
    from cascadeflow_cli.quality.calibrated import CalibratedValidator

quality_app = typer.Typer(
    help="Score answers with the rule-based quality validator (no config or ledger needed).",
    no_args_is_help=True,
)

_ROW_FIELDS = '{"query", "response", "id"?, "domain"?, "finish_reason"?}'


@dataclass(frozen=True)
class QualityRow:
    """One line of a `--input` file, checked."""

    line: int
    id: str | int | None
    query: str
    response: str
    domain: str | None
    finish_reason: str | None


@quality_app.command("check")
def check(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Option("--query", help="The question (with --response).")] = None,
    response: Annotated[str | None, typer.Option("--response", help="The answer to score.")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help=f"JSONL rows: {_ROW_FIELDS}; "
                                                    "checked whole before anything is printed.")] = None,
    domain: Annotated[str | None, typer.Option("--domain", callback=domain_given,
                                               help="Domain hint (\"code\" does not expect a final "
                                               "period); the default for rows without one.")] = None,
    finish_reason: Annotated[str | None, typer.Option("--finish-reason", help="The provider's finish "
                                                      "reason (\"length\": cut off by the token limit); "
                                                      "the default for rows without one.")] = None,
    preset: Annotated[str, typer.Option("--preset", help="fast, balanced or strict "
                                        "(threshold 0.5, 0.7, 0.8).")] = "balanced",
    threshold: Annotated[float | None, typer.Option("--threshold", help="Pass at this score (0 to 1) "
                                                    "instead of the preset's threshold.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (JSON Lines with --input).")
                       ] = False,
    calibration: Annotated[Path | None, typer.Option("--calibration", help="Score with this calibration "
                                                     "file (`cascade calibrate`): the score is the "
                                                     "probability the answer is good enough (default: "
                                                     "[quality] calibration of the config, if any).")
                           ] = None,
) -> None:
    """Score how likely a response is good enough (1 = no sign of a problem): empty, cut off,
    refusal, hedging, too short for the question, repetition, wrong arithmetic. Exit 0
    whether it passed or not; 1 for bad input."""
    if input_file is not None and (query is not None or response is not None):
        raise InputError("give either --query/--response or --input, not both")
    if input_file is None:
        if query is None and response is None:
            raise InputError("give --query and --response, or --input FILE")
        if response is None:
            raise InputError("--query needs --response (the answer to score)")
        if query is None:
            raise InputError("--response needs --query (the question it answers)")
    config = app_context(ctx).config
    if domain is not None:  # as `ask --domain`: an unknown name was scored as prose, silently
        check_domain(config, domain, "--domain: ")
    validator = _validator(config.quality, preset, threshold, calibration)
    if input_file is None:
        assert query is not None and response is not None
        result = validator.validate(query, response, finish_reason=finish_reason, domain=domain)
        if as_json:
            sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        else:
            _print_verdict(result, validator)
        return

    rows = read_rows(input_file, config)  # all of it, before a single line of output
    scored: list[tuple[QualityRow, QualityResult]] = []
    for row in rows:
        result = validator.validate(row.query, row.response,
                                    finish_reason=row.finish_reason or finish_reason,
                                    domain=row.domain or domain)
        if as_json:
            sys.stdout.write(json.dumps(row_json(row, result), ensure_ascii=False) + "\n")
        else:
            scored.append((row, result))
    if not as_json:
        _print_table(scored, validator, input_file)


def _validator(quality: QualityConfig, preset: str, threshold: float | None, calibration: Path | None = None
               ) -> QualityValidator | CalibratedValidator:
    from cascadeflow_cli.quality import QualityPreset, QualityValidator

    calibration = calibration or quality.calibration
    if calibration is not None:
        from cascadeflow_cli.engine.validators import calibrated_validator

        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise InputError(f"--threshold must be within [0, 1], got {threshold:g}")
        return calibrated_validator(calibration, quality, threshold)

    try:
        chosen = QualityPreset.named(preset)
    except ValueError as exc:
        raise InputError(f"--preset: {exc}") from None
    try:
        return QualityValidator(chosen, threshold)
    except ValueError as exc:  # "threshold must be within [0, 1], got 1.5"
        raise InputError(f"--{exc}") from None


def row_json(row: QualityRow, result: QualityResult) -> dict[str, Any]:
    """The CLI.md row: ``id`` first when the input row had one."""
    data = result.to_json()
    return data if row.id is None else {"id": row.id, **data}


# --------------------------------------------------------------------------- input


def read_rows(path: Path, config: AppConfig) -> list[QualityRow]:
    """Every row of a JSONL file, or an InputError naming ``FILE:LINE`` for the first bad
    one (a ``domain`` must be one ``config`` knows). Blank lines are skipped; a UTF-8
    byte-order mark is allowed."""
    return [parse_row(text, line, f"{path}:{line}", config) for line, text in input_lines(path)]


def parse_row(text: str, line: int, where: str, config: AppConfig) -> QualityRow:
    data = json_object(text, where, _ROW_FIELDS)
    query = string_field(data, "query", where, required=True)
    response = string_field(data, "response", where, required=True)
    assert query is not None and response is not None
    row = row_id(data, where)
    domain = string_field(data, "domain", where, blank=False)
    if domain is not None:
        check_domain(config, domain, f"{where}: ")
    return QualityRow(line, row, query, response, domain, string_field(data, "finish_reason", where))


# --------------------------------------------------------------------------- human output


def _print_verdict(result: QualityResult, validator: QualityValidator | CalibratedValidator) -> None:
    """`PASS  score 0.95 >= threshold 0.7 (preset balanced)`, then one line per reason."""
    from rich.text import Text

    from cascadeflow_cli.cli.context import stdout_console
    from cascadeflow_cli.cli.render.quality import score_text, verdict_text

    console = stdout_console()
    line = Text.assemble(
        verdict_text(result),
        "  score ",
        (score_text(result.score, result.threshold), "bold"),
        f" {'>=' if result.passed else '<'} threshold {result.threshold:g}",
        (" (calibrated)" if result.calibrated else f" (preset {validator.preset.name})", "dim"),
    )
    console.print(line)
    if not result.reasons:
        console.print(Text("  no problems found", style="dim"))
    for reason in result.reasons:
        name, _, why = reason.partition(": ")
        sub = result.checks.get(name)
        label = f"{name} {sub:.2f}" if sub is not None else name
        console.print(Text.assemble("  - ", (label, "yellow"), f": {why}" if why else ""))


def _print_table(scored: list[tuple[QualityRow, QualityResult]],
                 validator: QualityValidator | CalibratedValidator, path: Path) -> None:
    from rich.text import Text

    from cascadeflow_cli.cli.context import stdout_console

    if not scored:
        sys.stderr.write(f"{path}: no rows\n")
    console = stdout_console()
    if scored:
        from cascadeflow_cli.cli.render.quality import quality_table

        console.print(quality_table(scored))
    passed = sum(result.passed for _, result in scored)
    how = "calibrated" if getattr(validator, "calibrated", False) else f"preset {validator.preset.name}"
    console.print(Text(f"{passed} of {len(scored)} passed ({how}, "
                       f"threshold {validator.threshold:g})", style="bold"))
