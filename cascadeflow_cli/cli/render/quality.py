"""Quality tables: `cascade quality check --input`, the reliability table of `cascade
calibrate`, and `cascade domain --input`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    from rich.text import Text

    from cascadeflow_cli.cli.layout import FittedTable
    from cascadeflow_cli.quality import QualityResult
    from cascadeflow_cli.quality.calibrate import CalibrationReport
    from cascadeflow_cli.routing import DomainResult


def score_text(score: float, threshold: float) -> str:
    """Two decimals, or four when two would put the score on the wrong side of the
    threshold (0.6996 is not "0.70 < 0.7")."""
    short = f"{score:.2f}"
    return short if (float(short) >= threshold) == (score >= threshold) else f"{score:.4f}"


def verdict_text(result: QualityResult) -> Text:
    from rich.text import Text

    return Text("PASS", style="bold green") if result.passed else Text("FAIL", style="bold red")


def quality_table(scored: list[tuple[Any, QualityResult]]) -> FittedTable:
    from rich.text import Text

    from cascadeflow_cli.cli.render import fitted_table

    body = [
        [str(row.line), Text("-" if row.id is None else str(row.id)), verdict_text(result),
         score_text(result.score, result.threshold), Text("; ".join(result.reasons) or "-")]
        for row, result in scored
    ]
    headers = [("line", "right"), ("id", "left"), ("result", "left"), ("score", "right"),
               ("reasons", "left")]
    return fitted_table(headers, body, flexible="reasons")


def reliability_table(report: CalibrationReport) -> FittedTable:
    """`cascade calibrate`: predicted against observed quality, per probability bin."""
    from cascadeflow_cli.cli.layout import fitted_table

    body = [[b.bin, f"{b.predicted:.2f}", f"{b.observed:.2f}", str(b.n)] for b in report.reliability]
    return fitted_table(
        [("probability", "left"), ("predicted", "right"), ("observed", "right"), ("rows", "right")],
        body,
        flexible="probability",
    )


def domains_table(results: list[tuple[int, str | int | None, str, DomainResult]]) -> FittedTable:
    """`cascade domain --input`: one row per query, as the cascade would route it."""
    from rich.text import Text

    from cascadeflow_cli.cli.layout import fitted_table

    body = [[str(line), Text("-" if row is None else str(row)), r.domain, f"{r.confidence:.2f}",
             r.complexity or "-", Text(" ".join(text.split()))]
            for line, row, text, r in results]
    headers = [("line", "right"), ("id", "left"), ("domain", "left"), ("confidence", "right"),
               ("complexity", "left"), ("query", "left")]
    return fitted_table(headers, body, flexible="query")
