"""`cascade domain`: which domain a query (or each line of a file) belongs to, as the
cascade would route it. Needs no config file and no ledger."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cascadeflow_cli.cli.context import app_context
from cascadeflow_cli.cli.inputs import input_lines, json_object, row_id, string_field
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.text import is_blank, json_loads, text_problem

if TYPE_CHECKING:
    from collections.abc import Callable

    from cascadeflow_cli.routing import DomainResult

_ROW_FIELDS = '{"query", "id"?}'


def domain(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument(help="The query to classify.", show_default=False)] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help=f"A file of queries: JSONL rows "
                                                    f"{_ROW_FIELDS}, or one query per line.")] = None,
    semantic: Annotated[bool, typer.Option("--semantic", help="Use the offline embedding model where the "
                                           "rules are unsure (the [semantic] extra).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (JSON Lines with --input).")
                       ] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Show why: the signals and score of every "
                                          "domain, and whether the rules or the model decided.")] = False,
) -> None:
    """Detect the domain (code, math, medical, legal, finance, general, or a
    [domains.custom.NAME] of the config), its confidence, how it was decided and how
    demanding the query looks."""
    if (query is None) == (input_file is None):
        raise InputError("give a QUERY or --input FILE" if query is None else
                         "give either a QUERY or --input FILE, not both")
    if query is not None and is_blank(query):  # white space, or only invisible characters (U+200B)
        raise InputError("the query is empty")  # before the model is loaded
    detect = _detector(app_context(ctx).config.custom_domains, semantic)
    if query is not None:
        result = detect(query)
        if as_json:
            sys.stdout.write(json.dumps(_row(result, explain), ensure_ascii=False) + "\n")
        else:
            _print_one(query, result, explain)
        return
    assert input_file is not None
    rows = read_queries(input_file)  # all of it, before a single line of output
    results = [(line, row, text, detect(text)) for line, row, text in rows]
    if as_json:
        for _, row, _, result in results:
            data = _row(result, explain) if row is None else {"id": row, **_row(result, explain)}
            sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        _print_table(results, input_file)


def _detector(custom: Any, semantic: bool) -> Callable[[str], DomainResult]:
    """``custom``: the config's own domains, if it has a file."""
    if semantic:
        from cascadeflow_cli.routing.semantic import SemanticDomainDetector

        return SemanticDomainDetector(custom=custom).detect
    from cascadeflow_cli.routing.domain import MIN_CONFIDENCE, DomainDetector

    return DomainDetector(min_confidence=MIN_CONFIDENCE, custom=custom).detect  # as the cascade routes


def _row(result: DomainResult, explain: bool) -> dict[str, object]:
    data = result.to_json()
    if explain:
        data["explain"] = explanation(result)
    return data


def explanation(result: DomainResult) -> dict[str, object]:
    """Why ``result``: what decided, the rules' score and signals per domain, and (semantic)
    the head's probabilities and custom domains' similarity."""
    decided = result.explain.get("decided_by") or ("given" if result.method == "given" else "rules")
    out: dict[str, object] = {
        "decided_by": decided,
        "rules": {d: {"score": s, "signals": list(result.signals.get(d, ()))} for d, s in
                  sorted(result.scores.items(), key=lambda kv: -kv[1])},
    }
    out.update({k: v for k, v in result.explain.items() if k != "decided_by"})
    return out


def read_queries(path: Path) -> list[tuple[int, str | int | None, str]]:
    """(line, id, query) for every query in the file: JSON Lines if its first line is
    JSON (an object, or an array: refused, a row must be an object), else one query per
    line. Checked whole; blank lines skipped. A line that is a JSON object or array in a
    file of plain queries is refused: `["write a function"]` or a row after a plain first
    line was scored as its JSON text."""
    lines = input_lines(path)
    if not lines or not _is_json(lines[0][1]):
        for line, text in lines:
            if _is_json(text):
                raise InputError(f"{path}:{line}: a JSON row in a file of plain queries (line "
                                 f"{lines[0][0]} is not JSON): give every line as {_ROW_FIELDS}, or none")
        # a line showing nothing (only U+200B, a bidi mark) is skipped as a blank one is
        return [(line, None, text.strip()) for line, text in lines if not is_blank(text)]
    out = []
    for line, text in lines:
        where = f"{path}:{line}"
        data = json_object(text, where, _ROW_FIELDS)
        query = string_field(data, "query", where, required=True)
        assert query is not None
        if is_blank(query):
            raise InputError(f"{where}: 'query' is empty")
        # a JSON "\\ud800" escape is a lone surrogate: --semantic crashed on it ('unexpected
        # TypeError'), the table ('unexpected UnicodeEncodeError'), hostile-18
        if (problem := text_problem(query, from_bytes=False)) is not None:
            raise InputError(f"{where}: 'query' is not valid UTF-8 text ({problem})")
        out.append((line, row_id(data, where), query))
    return out


def _is_json(text: str) -> bool:
    """Is the line a JSON object or array (not a query that starts with a brace)?"""
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        return isinstance(json_loads(text), dict | list)
    except ValueError:
        return False


# --------------------------------------------------------------------------- human output


def _print_one(query: str, result: DomainResult, explain: bool = False) -> None:
    from rich.text import Text

    from cascadeflow_cli.cli.context import stdout_console

    console = stdout_console()
    console.print(Text.assemble(
        (result.domain, "bold"), f"  confidence {result.confidence:.2f}",
        (f"  ({result.method}; complexity {result.complexity})", "dim")))
    for name, signals in result.signals.items():
        if signals:
            console.print(Text.assemble("  ", (name, "yellow"), ": " + ", ".join(signals)))
    if not explain:
        return
    why = explanation(result)
    console.print(Text.assemble("  decided by: ", (str(why["decided_by"]), "bold")))
    console.print("  rules' scores: " + ", ".join(f"{d} {v['score']:g}" for d, v in why["rules"].items()))
    for key, label in (("head", "head's probabilities"), ("similarity", "nearest-example similarity")):
        if why.get(key):
            console.print(f"  {label}: " + ", ".join(f"{d} {v:.3f}" for d, v in why[key].items()))


def _print_table(results: list[tuple[int, str | int | None, str, DomainResult]], path: Path) -> None:
    from rich.text import Text

    from cascadeflow_cli.cli.context import stdout_console
    from cascadeflow_cli.cli.render.quality import domains_table

    console = stdout_console()
    if not results:
        sys.stderr.write(f"{path}: no queries\n")
        return
    console.print(domains_table(results))
    counts = Counter(r.domain for *_, r in results)
    console.print(Text(", ".join(f"{d} {n}" for d, n in counts.most_common()), style="bold"))
