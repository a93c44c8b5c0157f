"""`cascade demo`: the whole product on a fresh machine with no API key.

Recorded answers of a cheap and a strong model are replayed by a local
OpenAI-compatible server; the queries go through the real cascade (real HTTP client,
real prices from litellm's map, real quality checks, a real ledger)."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from cascadeflow_cli.cli.context import app_context, is_terminal, stderr_console, stdout_console

DEMO_FILE = "demo_queries.jsonl"
DEMO_CALIBRATION = "demo_calibration.json"  # fitted on the demo's labelled answers
CHEAP, STRONG = "gpt-4o-mini", "gpt-4o"
MODEL_IDS = {"mini": CHEAP, "big": STRONG}


def demo_queries_path() -> Path:
    return Path(str(resources.files("cascadeflow_cli") / "data" / DEMO_FILE))


def demo_calibration_path() -> Path:
    return Path(str(resources.files("cascadeflow_cli") / "data" / DEMO_CALIBRATION))


def demo_validator() -> Any:
    """The calibrated check fitted on the demo's answers (bench/demo_calibration.py), or
    None for the rule validator. TODO(issue 9, merge): quality-model's
    ``load_calibration``/``CalibratedValidator``; drop the ImportError branch then."""
    path = demo_calibration_path()
    if not path.is_file():
        return None
    try:
        from cascadeflow_cli.quality.calibrated import (  # type: ignore[import-not-found]
            CalibratedValidator,
            load_calibration,
        )
    except ImportError:
        return None
    return CalibratedValidator(load_calibration(path))


def is_right(row: dict[str, Any], model: str) -> bool | None:
    """The demo row's label for the answer of our model ``model`` (None: unlabelled)."""
    label = (row.get("correct") or {}).get(MODEL_IDS.get(model, model))
    return label if isinstance(label, bool) else None


def demo_config(base_url: str, db_path: Path) -> Any:
    from cascadeflow_cli.config import AppConfig, LedgerConfig, ModelConfig

    models = {
        "mini": ModelConfig(name="mini", model=f"openai/{CHEAP}", api_base=base_url, timeout=10),
        "big": ModelConfig(name="big", model=f"openai/{STRONG}", api_base=base_url, timeout=10),
    }
    return AppConfig(models=models, ledger=LedgerConfig(path=db_path))


def _fresh_demo_ledger(db_path: Path) -> None:
    """Delete the demo's previous ledger, and only that: `demo --db` deleted whatever it
    named, the user's own ledger with every paid request in it included, and as root
    `--db /dev/zero` replaced the device with a ledger file (hostile-21)."""
    import os
    import stat

    from cascadeflow_cli.errors import InputError
    from cascadeflow_cli.ledger.budgets import known_users
    from cascadeflow_cli.ledger.db import open_ledger

    try:
        mode = os.stat(db_path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise InputError(f"{db_path}: not a regular file: the demo writes a fresh ledger there, "
                         "give --db a new file name")
    if mode is not None and os.path.getsize(db_path) > 0:
        with open_ledger(db_path) as ledger:  # a file that is no ledger is refused here
            others = sorted(known_users(ledger) - {"demo"})
        if others:
            raise InputError(f"{db_path}: a ledger with the requests of {', '.join(others[:3])}"
                             f"{' and others' if len(others) > 3 else ''}: the demo starts from an "
                             "empty ledger and would delete them; give --db a new file name (or none)")
    for suffix in ("", "-wal", "-shm"):  # a fresh demo ledger each run
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)


def demo(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Run only the first N queries.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every result as a JSON array.")] = False,
) -> None:
    """Run the sample queries through a real cascade against recorded answers (no API key needed)."""
    from cascadeflow_cli.cli.render import demo_table, demo_totals
    from cascadeflow_cli.config import user_data_dir
    from cascadeflow_cli.engine.cascade import Cascade
    from cascadeflow_cli.ledger.db import open_ledger
    from cascadeflow_cli.replay.server import ReplayServer, load_recordings

    context = app_context(ctx)
    path = demo_queries_path()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[:limit] if limit else rows
    db_path = Path(context.db_path) if context.db_path else user_data_dir() / "demo.db"  # the demo is SQLite
    _fresh_demo_ledger(db_path)
    err = stderr_console()
    results = []
    with ReplayServer(load_recordings(path)) as server, open_ledger(db_path) as ledger:
        cascade = Cascade(demo_config(server.base_url, db_path), ledger, validator=demo_validator())
        if is_terminal():
            from rich.progress import track

            rows_iter = track(rows, description="asking", console=err, transient=True)
        else:
            rows_iter = rows
        for row in rows_iter:
            results.append((row, cascade.run(row["query"], "demo", domain=row.get("domain"))))
    if as_json:
        out = [
            {"id": row["id"], **result.to_json(), "correct": is_right(row, result.model)}
            for row, result in results
        ]
        sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
        return
    console = stdout_console()
    console.print(demo_table(results, [is_right(row, r.model) for row, r in results]))
    console.print(demo_totals([r for _, r in results], STRONG, demo_quality(results)))
    err.print(
        f"The answers are recorded (written for this demo), replayed by a local server on "
        f"{server.base_url}; prices are {CHEAP} and {STRONG} list prices from litellm's "
        f"price map; every answer is labelled right or wrong. "
        f"Ledger: {db_path}  (try: cascade logs --db {db_path})",
        style="dim",
    )


def demo_quality(results: list[tuple[dict[str, Any], Any]]) -> tuple[int, int, int]:
    """(right answers of the cascade, right answers of the strong model alone, labelled
    rows): the quality the cascade kept, from the rows' right/wrong labels."""
    kept = strong = labelled = 0
    for row, result in results:
        got, alone = is_right(row, result.model), is_right(row, "big")
        if got is None or alone is None:
            continue
        labelled += 1
        kept += got
        strong += alone
    return kept, strong, labelled
