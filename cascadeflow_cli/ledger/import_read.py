"""The importer's readers: format sniffing, and CSV / JSON / JSONL files streamed as
``(location, row)`` pairs with our column names (other tools' names mapped by ALIASES);
and the file both passes read (a pipe copied once, a compressed file refused, a file that
changed between the passes noticed)."""

from __future__ import annotations

import contextlib
import csv
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from cascadeflow_cli.errors import InputError
from cascadeflow_cli.files import MAX_INPUT_BYTES, MAX_TEXT_BYTES, TooLargeError, read_capped
from cascadeflow_cli.ledger.export import csv_restored
from cascadeflow_cli.ledger.import_values import ImportRowError, _blank
from cascadeflow_cli.ledger.schema import EXPORT_COLUMNS, EXPORT_NAMES
from cascadeflow_cli.text import LineDecodeError, Utf8Lines, duplicate_key_line, json_loads, unique_keys

FORMATS = ("csv", "json", "jsonl")
REQUIRED = ("timestamp", "user", "model", "cost")
KNOWN = EXPORT_NAMES  # what `cascade export` writes (ledger/schema.py)
# Other tools' names for our columns, used when our own name is absent.
ALIASES = {
    "ts": "timestamp", "time": "timestamp", "date": "timestamp", "datetime": "timestamp",
    "created_at": "timestamp", "cost_usd": "cost", "user_id": "user", "username": "user",
    "prompt_tokens": "input_tokens", "completion_tokens": "output_tokens",
}
_MAX_FIELD = 1 << 30  # csv's default limit (128 KiB) is smaller than a long stored answer

# the free-text columns, whose cells CSV export defuses (ledger/export.FORMULA_LEADS)
_TEXT = frozenset(c.name for c in EXPORT_COLUMNS if c.kind == "text")
T = TypeVar("T")


def detect_format(path: Path, explicit: str | None = None) -> str:
    """``explicit``, else the extension, else the first character of the file."""
    if explicit:
        if explicit not in FORMATS:
            raise InputError(f"unknown format {explicit!r} (use {', '.join(FORMATS)})")
        return explicit
    suffix = path.suffix.lower()
    if suffix in (".csv", ".json", ".jsonl"):
        return suffix[1:]
    if suffix == ".ndjson":
        return "jsonl"
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        head = fh.read(4096).lstrip()
    return "json" if head.startswith("[") else "jsonl" if head.startswith("{") else "csv"


def _canonical_header(names: Iterable[str], where: str) -> tuple[list[str | None], tuple[str, ...]]:
    """Map each column to our name (None: ignored), and list the ignored ones."""
    cleaned = [n.strip().lower() for n in names]
    seen: set[str] = set()
    for n in cleaned:
        if n and n in seen:
            raise ImportRowError(f"{where}:1: column {n!r} appears twice")
        seen.add(n)
    mapped: list[str | None] = []
    ignored: list[str] = []
    for n in cleaned:
        name = n if n in KNOWN else ALIASES.get(n)
        if name is None or (name != n and name in seen):
            mapped.append(None)
            if n:
                ignored.append(n)
        else:
            mapped.append(name)
    missing = [r for r in REQUIRED if r not in mapped]
    if missing:
        raise ImportRowError(
            f"{where}:1: missing column(s) {', '.join(missing)} "
            f"(need at least {','.join(REQUIRED)}; found {','.join(cleaned) or 'none'})")
    return mapped, tuple(ignored)


def _csv_records(path: Path, where: str) -> tuple[tuple[str, ...], Iterator[tuple[str, dict[str, Any]]]]:
    csv.field_size_limit(max(csv.field_size_limit(), _MAX_FIELD))  # long answers are fine
    fh = path.open("rb")
    lines = Utf8Lines(fh)  # decoded line by line: a bad byte is reported on its own line
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        fh.close()
        raise ImportRowError(f"{where}:1: the file is empty") from None
    except (csv.Error, LineDecodeError) as exc:
        fh.close()
        raise ImportRowError(f"{where}:{getattr(exc, 'line', 1)}: {_reason(exc)}") from None
    mapped, ignored = _canonical_header(header, where)

    def records() -> Iterator[tuple[str, dict[str, Any]]]:
        with fh:
            line = reader.line_num + 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except (csv.Error, LineDecodeError) as exc:
                    raise ImportRowError(f"{where}:{getattr(exc, 'line', line)}: {_reason(exc)}") from None
                if row and not (len(row) == 1 and not row[0].strip()):
                    if len(row) != len(mapped):
                        hint = " (an unclosed double quote?)" if any("\n" in f for f in row) else ""
                        raise ImportRowError(f"{where}:{line}: expected {len(mapped)} fields, "
                                             f"found {len(row)}{hint}")
                    yield f"{where}:{line}", {k: (csv_restored(v) if k in _TEXT else v) if v != "" else None
                                              for k, v in zip(mapped, row, strict=True) if k is not None}
                line = reader.line_num + 1

    return ignored, records()


def _reason(exc: Exception) -> str:
    return str(exc)


def _json_object(text: str, loc: str) -> dict[str, Any]:
    try:
        value = json_loads(text, parse_float=Decimal, object_pairs_hook=unique_keys)
    except ValueError as exc:
        raise ImportRowError(f"{loc}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ImportRowError(f"{loc}: expected a JSON object")
    return value


def _numbered_lines(path: Path, where: str) -> Iterator[tuple[int, str]]:
    """(number, text) of each line, decoded one by one (a bad byte names its own line)."""
    with path.open("rb") as fh:
        lines = Utf8Lines(fh, split_cr=False)  # in JSON a lone \r is whitespace, not a line end
        try:
            for text in lines:
                yield lines.number, text
        except LineDecodeError as exc:
            raise ImportRowError(f"{where}:{exc.line}: {exc}") from None


def _jsonl_records(path: Path, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for line, text in _numbered_lines(path, where):
        if text.strip():
            yield f"{where}:{line}", _json_object(text, f"{where}:{line}")


def _json_records(path: Path, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A JSON array. Our export writes one object a line, which streams with exact line
    numbers; any other layout is loaded whole and rows are named by item number."""
    if _is_line_layout(path):
        yield from _json_line_records(path, where)
    else:
        yield from _json_whole(path, where)


def _is_line_layout(path: Path) -> bool:
    """``[``, then lines holding one object each (``{...},``), then ``]``: checked
    without parsing, so a streaming read never has to change strategy half-way."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        texts = (t.strip() for t in fh)
        texts = (t for t in texts if t)
        if next(texts, None) not in ("[", "[]"):
            return False
        previous = "["
        for text in texts:
            if previous == "]" or previous == "[]":
                return False
            if text != "]" and not (text.startswith("{") and text.endswith(("}", "},"))):
                return False
            previous = text
        return previous in ("]", "[]")


def _json_line_records(path: Path, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for line, raw in _numbered_lines(path, where):
        text = raw.strip()
        if text.startswith("{"):
            yield f"{where}:{line}", _json_object(text.removesuffix(","), f"{where}:{line}")


def _json_whole(path: Path, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    text = ""
    try:
        with path.open("rb") as fh:
            raw = read_capped(fh, MAX_INPUT_BYTES, "the JSON array").removeprefix(b"\xef\xbb\xbf")
        text = raw.decode("utf-8")
        data = json_loads(text, parse_float=Decimal, object_pairs_hook=unique_keys)
    except TooLargeError as exc:
        raise ImportRowError(f"{where}:1: {exc}; import it as JSON Lines (--format jsonl), which "
                             "streams") from None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ImportRowError(f"{where}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    except ValueError as exc:  # a key named twice (unique_keys) has no line of its own: found
        line = getattr(exc, "lineno", None) or duplicate_key_line(text) or 1
        raise ImportRowError(f"{where}:{line}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise ImportRowError(f"{where}:1: expected a JSON array of objects")
    for item, value in enumerate(data, start=1):
        if not isinstance(value, dict):
            raise ImportRowError(f"{where}: item {item}: expected a JSON object")
        yield f"{where}: item {item}", value


@lru_cache(maxsize=256)
def _json_key(key: str) -> str | None:
    name = key.strip().lower()
    return name if name in KNOWN else ALIASES.get(name)


def _canonical_object(obj: dict[str, Any], ignored: set[str]) -> dict[str, Any]:
    """A JSON row with our column names; unknown keys are noted and dropped."""
    row: dict[str, Any] = {}
    for key, value in obj.items():
        name = _json_key(key)
        if name is None:
            if len(ignored) < 50:
                ignored.add(key)
        elif name not in row or name == key.strip().lower():
            row[name] = value
    return row


def _with_required(records: Iterator[tuple[str, dict[str, Any]]]
                   ) -> Iterator[tuple[str, dict[str, Any]]]:
    """JSON rows have no header: check the required fields row by row."""
    for loc, obj in records:
        names = {_json_key(k) for k in obj}
        missing = [r for r in REQUIRED if r not in names]
        callless = "request_id" in names and not _blank(obj.get("request_id"))
        if missing and not (callless and set(missing) <= {"model", "cost"}):
            raise ImportRowError(f"{loc}: missing field(s) {', '.join(missing)} "
                                 f"(need at least {','.join(REQUIRED)})")
        yield loc, obj


# --- the file the two passes read -----------------------------------------------------


def identity(path: Path) -> tuple[int, int, int, int]:
    """What changes when a file is written or replaced (a write sets its mtime)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def unchanged(items: Iterator[T], path: Path, before: tuple[int, int, int, int],
              where: str) -> Iterator[T]:
    """The second pass's items, then a check that the file is the one the first pass
    checked: rows written into it meanwhile (a log still being appended to, a file
    replaced) were imported unchecked, or failed mid-import naming a line the check had
    passed. Raised inside record_many's transaction, so nothing is imported."""
    try:
        yield from items
    except ImportRowError:
        if identity(path) != before:
            raise changed(where) from None
        raise
    if identity(path) != before:
        raise changed(where)


def changed(where: str) -> ImportRowError:
    return ImportRowError(f"{where}: the file changed while it was imported, so nothing was "
                          "imported: import it again once it is complete")


# The first bytes of compressed files: such a file was 'not UTF-8 text (byte 0x8b)'
_COMPRESSED = {b"\x1f\x8b": ("gzip", "gunzip -c"), b"\xfd7zXZ\x00": ("xz", "xz -dc"),
               b"BZh": ("bzip2", "bzip2 -dc"), b"\x28\xb5\x2f\xfd": ("zstd", "zstd -dc"),
               b"PK\x03\x04": ("zip", "unzip -p")}


def not_compressed(path: Path, where: str) -> None:
    with path.open("rb") as fh:
        head = fh.read(6)
    for magic, (kind, command) in _COMPRESSED.items():
        if head.startswith(magic):
            raise ImportRowError(f"{where}: a {kind}-compressed file, not text: decompress it "
                                 f"first, e.g. cascade import <({command} {where})")


@contextlib.contextmanager
def readable_twice(path: Path, fmt: str | None = None) -> Iterator[Path]:
    """``path`` when it is a regular file; else (a pipe such as ``<(gunzip -c h.csv.gz)``
    or /dev/stdin, a FIFO, a device) a temporary copy of what it gives, up to
    MAX_INPUT_BYTES, and (but for a JSON array, one line may hold it all) no line longer
    than the readers take, so an endless stream stops where reading the file would. Both
    passes open the file: read twice, a pipe gave its rows to the check and nothing to the
    import ('the file is empty'), and a FIFO written once blocked the second pass for ever."""
    if stat.S_ISREG(os.stat(path).st_mode):
        yield path
        return
    line_cap = MAX_TEXT_BYTES if (fmt or path.suffix.lower().lstrip(".")) != "json" else None
    with tempfile.TemporaryDirectory(prefix="cascade-import-") as tmp:
        copy = Path(tmp) / (path.name or "input")  # the name keeps its extension for the format
        with path.open("rb") as source, copy.open("wb") as sink:
            copied = line_start = 0
            lines = 1
            while chunk := source.read(1 << 20):
                ends = chunk.count(b"\n")
                if ends:
                    lines += ends
                    line_start = copied + chunk.rindex(b"\n") + 1
                copied += len(chunk)
                if line_cap is not None and copied - line_start > line_cap:
                    raise ImportRowError(f"{path}:{lines}: a line is longer than {line_cap >> 20} MiB, the "
                                         "most cascade reads (a file that never ends, such as /dev/zero?)")
                if copied > MAX_INPUT_BYTES:
                    raise ImportRowError(
                        f"{path}: more than {MAX_INPUT_BYTES >> 30} GiB from a pipe or device, the "
                        "most cascade copies to read twice (a file that never ends, such as "
                        "/dev/zero?): save it to a file and import that")
                sink.write(chunk)
        yield copy
