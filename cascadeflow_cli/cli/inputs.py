"""Reading `--input FILE` for the commands that score or classify rows (quality check,
domain): every line checked before anything is printed, errors as ``FILE:LINE: reason``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cascadeflow_cli.errors import InputError
from cascadeflow_cli.files import TooLargeError, capped_lines
from cascadeflow_cli.text import json_kind, json_loads, unique_keys


def input_lines(path: Path) -> list[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file with their 1-based numbers (a byte-order
    mark at the start is allowed), or an InputError naming the file (and line)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    lines: list[tuple[int, str]] = []
    with fh:
        try:
            for number, raw in enumerate(capped_lines(fh), start=1):
                _add_line(lines, path, number, raw)
        except TooLargeError as exc:
            raise InputError(f"{path}:{getattr(exc, 'line', 1)}: {exc}") from None
    return lines


def _add_line(lines: list[tuple[int, str]], path: Path, number: int, raw: bytes) -> None:
    if number == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}:{number}: not UTF-8 text") from None
    if text.strip():
        lines.append((number, text))


def json_object(text: str, where: str, expected: str) -> dict[str, Any]:
    """One JSONL line as a dict; ``expected`` names its fields in the error."""
    try:
        data = json_loads(text, object_pairs_hook=unique_keys)
    except ValueError as exc:
        raise InputError(f"{where}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object {expected}")
    return data


def string_field(data: dict[str, Any], name: str, where: str, *, required: bool = False,
                 blank: bool = True) -> str | None:
    """``data[name]`` if it is a string (None if absent or null and not ``required``);
    ``blank=False`` refuses "" and "  " (a blank domain read as no domain)."""
    if name not in data and required:
        raise InputError(f"{where}: no '{name}'")
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where}: '{name}' must be a string, got {kind(value)}")
    if not blank and not value.strip():
        raise InputError(f"{where}: '{name}' is empty")
    return value


def row_id(data: dict[str, Any], where: str) -> str | int | None:
    """The row's optional ``id``: a non-empty string or an integer."""
    if "id" not in data:
        return None
    value = data["id"]
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise InputError(f"{where}: 'id' must be a non-empty string or an integer, got {kind(value)}")
    return value


kind = json_kind  # what a JSON value is, for error messages (serve's too)
