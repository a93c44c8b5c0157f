"""Recorded answers for the replay server: ``model -> {query -> answer}``, read from the
demo's or the GSM8K replay's JSONL files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class Recordings(dict[str, dict[str, str]]):
    """``model -> {query -> answer}``, plus the ``(model, query)`` pairs whose recorded answer was
    cut off by the token limit; those are served with finish_reason "length"."""

    def __init__(self, answers: Mapping[str, Mapping[str, str]] | None = None) -> None:
        super().__init__()
        self.truncated: set[tuple[str, str]] = set()
        if answers:
            self.merge(answers)

    def add(self, model: str, query: str, answer: str, *, truncated: bool = False) -> None:
        key = query.strip()
        self.setdefault(model, {})[key] = answer
        if truncated:
            self.truncated.add((model, key))
        else:
            self.truncated.discard((model, key))

    def merge(self, other: Mapping[str, Mapping[str, str]]) -> None:
        """Add every answer of ``other`` (a plain dict or ``Recordings``), keeping its flags."""
        cut: set[tuple[str, str]] = getattr(other, "truncated", set())
        for model, answers in other.items():
            for query, answer in answers.items():
                self.add(model, query, answer, truncated=(model, query.strip()) in cut)


def load_recordings(path: str | Path) -> Recordings:
    """Read recorded answers from a JSONL file.

    Two row shapes: the demo file's ``{"query", "answers": {model: answer}, "truncate":
    {model: true}?}`` and the GSM8K replay file's ``{"query", "draft_model", "draft_answer",
    "verifier_model", "verifier_answer", ...}``.
    """
    recordings = Recordings()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc})") from exc
            _add_row(recordings, row, where)
    return recordings


def _add_row(recordings: Recordings, row: Any, where: str) -> None:
    if not isinstance(row, dict) or not isinstance(row.get("query"), str):
        raise ValueError(f"{where}: expected a JSON object with a 'query' string")
    query = row["query"]
    if isinstance(row.get("answers"), dict):
        truncate = row.get("truncate") or {}
        for model, answer in row["answers"].items():
            recordings.add(model, query, answer, truncated=bool(truncate.get(model)))
    elif "draft_model" in row and "verifier_model" in row:
        recordings.add(row["draft_model"], query, row["draft_answer"])
        recordings.add(row["verifier_model"], query, row["verifier_answer"])
    else:
        raise ValueError(f"{where}: expected 'answers' or 'draft_model'/'verifier_model' fields")
