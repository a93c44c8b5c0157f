"""Requests: the `ask` summary line, the `logs`, `demo` and `models` tables. Pure
functions of results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rich.text import Text

from cascadeflow_cli.cli.layout import FittedTable, fitted_table
from cascadeflow_cli.clock import parse_ts
from cascadeflow_cli.money import format_dollars, format_usd
from cascadeflow_cli.text import shown_name

if TYPE_CHECKING:  # the engine is not needed to render ledger rows
    from cascadeflow_cli.engine.cascade import CascadeResult


QUERY_CHARS = 240  # a stored query can be pages long: `logs --json` has it whole


def verdict(result: CascadeResult) -> str:
    if result.draft_accepted:
        return "draft accepted"
    if result.escalated:
        return f"escalated from {result.draft_model}"
    return "single model"


def savings_text(savings_nusd: int, baseline_nusd: int) -> str:
    if baseline_nusd <= 0:
        return f"saved {format_usd(savings_nusd)}"
    pct = 100 * savings_nusd / baseline_nusd
    word = "saved" if savings_nusd >= 0 else "lost"
    return f"{word} {format_usd(abs(savings_nusd))} ({abs(pct):.0f}%) vs {format_usd(baseline_nusd)} alone"


def quality_text(result: CascadeResult) -> str:
    """The draft's score and the threshold it was compared with (issue 9): `quality 0.82 ≥ 0.70`;
    a calibrated score is a probability of being good enough: `p(good) 0.82 ≥ 0.70`."""
    draft = result.calls[0] if result.calls else None
    score = result.quality_score
    if result.escalated and draft is not None and draft.quality_score is not None:
        score, label = draft.quality_score, "draft "
    else:
        label = ""
    label += "p(good)" if result.calibrated else "quality"
    threshold = result.quality_threshold
    if threshold is None or score is None or not (result.draft_accepted or result.escalated):
        return f"{label} {score:.2f}" if score is not None else label
    return f"{label} {score:.2f} {'≥' if score >= threshold else '<'} {threshold:.2f}"


def ask_summary(result: CascadeResult) -> Text:
    """`mini · draft accepted · $0.000120 · saved $0.001900 (94%) vs big alone`."""
    parts = [
        result.model,
        verdict(result),
        format_usd(result.cost_nusd),
        savings_text(result.savings_nusd, result.verifier_only_cost_nusd),
    ]
    if result.quality_score is not None:
        parts.insert(2, quality_text(result))
    if result.domain:  # given, or detected to pick a [domains] chain (with its confidence)
        sure = result.domain_confidence
        parts.append(f"domain {result.domain}" + (f" ({sure:.2f})" if sure is not None and sure < 1 else ""))
    if result.enforcement_message:
        parts.append(result.enforcement_message)
    return Text(" · ".join(parts), style="dim")


def _local(ts: str, timezone: str) -> str:
    from zoneinfo import ZoneInfo

    return parse_ts(ts).astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def logs_table(rows: Iterable[Mapping[str, Any]], timezone: str) -> FittedTable:
    body: list[list[Any]] = []
    for r in rows:
        if r["status"] != "ok":
            path = Text(r["status"], style="red")
        elif r["draft_accepted"]:
            path = Text("draft ok", style="green")
        elif r["escalated"]:
            path = Text("escalated", style="yellow")
        else:
            path = Text("single")
        body.append(
            [
                _local(r["ts"], timezone),
                shown_name(r["user"]),  # 'alice\r' printed as 'alice', ESC drove the terminal
                r["model"] or "-",
                path,
                format_usd(r["cost_nusd"]),
                format_usd(r["savings_nusd"] or 0) if r["status"] == "ok" else "-",
                Text(" ".join((r["query"] or "(not stored)").split())),
            ]
        )
    headers = [
        ("time", "left"),
        ("user", "left"),
        ("model", "left"),
        ("path", "left"),
        ("cost", "right"),
        ("saved", "right"),
        ("query", "left"),
    ]
    return fitted_table(headers, body, max_chars=QUERY_CHARS)


def _price(value: float | None) -> str:
    return "unknown" if value is None else format_dollars(value)


def models_table(rows: list[dict[str, Any]], chains: Mapping[str, Any]) -> FittedTable:
    caption = "cascade: " + " → ".join(chains["cascade"])
    for domain, chain in chains.get("domains", {}).items():
        caption += f"   {domain}: " + " → ".join(chain)
    if chains.get("degraded"):
        caption += "   degraded: " + " → ".join(chains["degraded"])
    headers = [
        ("name", "left"),
        ("model", "left"),
        ("in $/M", "right"),
        ("out $/M", "right"),
        ("cached $/M", "right"),
        ("price from", "left"),
    ]
    body = []
    for r in rows:
        source = Text(r["price_source"], style="red" if r["price_source"] == "unknown" else "")
        cached = r["cached_input_cost_per_million"]
        body.append(
            [
                r["name"],
                r["model"],
                _price(r["input_cost_per_million"]),
                _price(r["output_cost_per_million"]),
                "-" if cached is None else _price(cached),
                source,
            ]
        )
    return fitted_table(headers, body, flexible="model", caption=caption)


def demo_table(
    results: list[tuple[dict[str, Any], CascadeResult]], right: list[bool | None] | None = None
) -> FittedTable:
    """One row per demo query; ``right`` the label of each final answer (issue 9: the score
    alone says how sure the check was, the label whether the answer was in fact right)."""
    body: list[list[Any]] = []
    labels = right if right is not None else [None] * len(results)
    for i, ((row, r), ok) in enumerate(zip(results, labels, strict=True), start=1):
        if r.draft_accepted:
            score = f"p {r.quality_score:.2f}" if r.calibrated else f"{r.quality_score:.2f}"
            by, why = Text(r.model, style="green"), f"draft ok {score}"
        else:
            draft_call = r.calls[0]
            reason = (
                ", ".join(x.split(":")[0] for x in draft_call.quality_reasons)
                or (draft_call.error and "call failed")
                or "low score"
            )
            score = f"{draft_call.quality_score:.2f}" if draft_call.quality_score is not None else "-"
            by, why = Text(r.model, style="yellow"), f"{reason} {score}"
        verdict = Text("-") if ok is None else Text("right", style="green") if ok else Text("WRONG", "red")
        body.append(
            [
                str(i),
                row.get("domain") or "-",
                by,
                why,
                verdict,
                format_usd(r.cost_nusd),
                Text(" ".join(row["query"].split())),
            ]
        )
    headers = [
        ("#", "right"),
        ("domain", "left"),
        ("model", "left"),
        ("why", "left"),
        ("answer", "left"),
        ("cost", "right"),
        ("query", "left"),
    ]
    return fitted_table(headers, body)


def demo_totals(
    results: list[CascadeResult], strong: str, quality: tuple[int, int, int] | None = None
) -> Text:
    """Cost, savings and, from the rows' labels, the quality kept: right answers of the
    cascade against right answers of ``strong`` alone."""
    cost = sum(r.cost_nusd for r in results)
    baseline = sum(r.verifier_only_cost_nusd for r in results)
    accepted = sum(r.draft_accepted for r in results)
    kept = ""
    if quality is not None and quality[2]:
        right, alone, labelled = quality
        share = f"; {100 * right / alone:.0f}% of its quality kept" if alone else ""
        kept = f" Right answers: cascade {right} of {labelled}, {strong} alone {alone}{share}."
    return Text(
        f"{len(results)} queries: {accepted} answered by the cheap draft, {len(results) - accepted} "
        f"escalated. Cascade cost {format_usd(cost)}; {strong} alone {format_usd(baseline)}; "
        + savings_text(baseline - cost, baseline).split(" vs ")[0]
        + "."
        + kept,
        style="bold",
    )


