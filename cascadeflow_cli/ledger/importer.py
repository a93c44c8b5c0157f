"""Import ledger history: our own export (CSV, JSON, JSONL) or plain usage history from
elsewhere with at least ``timestamp,user,model,cost``.

All or nothing, in two passes over the file: the first parses and validates every row and
writes nothing (one bad row stops it with ``file:line: reason``); the second parses again
and inserts everything in one transaction, so even a full disk mid-way leaves the ledger
as it was. Memory stays flat whatever the file size: rows stream through both passes.

Idempotent: rows from our export keep their ids; a row of plain history gets an id derived
from its content (and from how many identical rows came before it in the file), so
importing the same file twice inserts nothing the second time (``INSERT OR IGNORE``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.ledger.schema import EXPORT_NAMES, CallRecord, RequestRecord, answering, derive
from cascadeflow_cli.model_map import infer_provider
from cascadeflow_cli.money import MAX_AMOUNT_USD, MAX_COUNT, nanos_from_usd
from cascadeflow_cli.text import LineDecodeError, Utf8Lines, text_problem

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.storage import LedgerStore

FORMATS = ("csv", "json", "jsonl")
REQUIRED = ("timestamp", "user", "model", "cost")
KNOWN = EXPORT_NAMES  # what `cascade export` writes (ledger/schema.py)
# Other tools' names for our columns, used when our own name is absent.
ALIASES = {
    "ts": "timestamp", "time": "timestamp", "date": "timestamp", "datetime": "timestamp",
    "created_at": "timestamp", "cost_usd": "cost", "user_id": "user", "username": "user",
    "prompt_tokens": "input_tokens", "completion_tokens": "output_tokens",
}
PROGRESS_EVERY = 10_000
_MAX_FIELD = 1 << 30  # csv's default limit (128 KiB) is smaller than a long stored answer
_OUR_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class ImportRowError(InputError):
    """One bad row: the message names the file, the line and the reason."""


@dataclass(frozen=True)
class ImportResult:
    path: Path
    format: str
    rows: int
    requests: int
    calls: int
    new_requests: int = 0
    new_calls: int = 0
    ignored_columns: tuple[str, ...] = ()

    @property
    def skipped_requests(self) -> int:
        return self.requests - self.new_requests


@dataclass
class _Call:
    id: str | None
    ts: str
    model: str
    model_id: str
    provider: str
    role: str | None
    seq: int
    status: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_nusd: int
    cost_source: str
    latency_ms: float
    attempts: int
    finish_reason: str | None
    quality_score: float | None
    quality_reasons: tuple[str, ...]
    accepted: int | None
    answer: str | None
    error: str | None


@dataclass
class _Request:
    id: str
    ts: str
    user: str
    status: str
    error: str | None
    query: str | None
    domain: str | None
    domain_confidence: float | None
    draft_accepted: int | None
    escalated: int | None
    verifier_only_nusd: int | None
    savings_nusd: int | None
    enforcement: str
    enforcement_message: str | None
    latency_ms: float | None
    external_id: str | None
    calls: list[_Call] = field(default_factory=list)
    callless: bool = False


# --- reading records ------------------------------------------------------------------


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
                    yield f"{where}:{line}", {k: v if v != "" else None
                                              for k, v in zip(mapped, row, strict=True) if k is not None}
                line = reader.line_num + 1

    return ignored, records()


def _reason(exc: Exception) -> str:
    return str(exc)


def _json_object(text: str, loc: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_float=Decimal)
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
    try:
        with path.open("rb") as fh:
            raw = fh.read().removeprefix(b"\xef\xbb\xbf")
        data = json.loads(raw.decode("utf-8"), parse_float=Decimal)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ImportRowError(f"{where}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    except ValueError as exc:
        raise ImportRowError(f"{where}:{getattr(exc, 'lineno', 1)}: not valid JSON ({exc})") from None
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


# --- values -----------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, loc: str, name: str) -> str | None:
    """Text as given (JSON keeps "" apart from null; CSV blanks arrive as None)."""
    if type(value) is str:
        problem = text_problem(value)  # a JSON "\ud800" escape: SQLite cannot store it
        if problem is not None:
            raise ImportRowError(f"{loc}: {name} is not valid UTF-8 text ({problem})")
        return value
    if value is None:
        return value
    if isinstance(value, bool | dict | list):
        raise ImportRowError(f"{loc}: {name} must be text, got {json.dumps(value, default=str)}")
    return str(value)


def _required_text(value: Any, loc: str, name: str) -> str:
    text = _text(value, loc, name)
    if text is None or not text.strip():
        raise ImportRowError(f"{loc}: {name} is empty")
    return text.strip()


def _code(value: Any, loc: str, name: str, default: str | None = None) -> str | None:
    """A word the ledger uses as a code (ids, role, status...): exported without CSV
    quoting, so it must not hold a comma, a double quote or a line break."""
    text = _text(value, loc, name)
    if text is None or not text.strip():
        return default
    text = text.strip()
    if any(ch in text for ch in ',"\r\n'):
        raise ImportRowError(f"{loc}: {name} must not contain commas, double quotes or line "
                             f"breaks: {text!r}")
    return text


def _number(value: Any, loc: str, name: str) -> Decimal | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise ImportRowError(f"{loc}: {name} must be a number, got {value}")
    if isinstance(value, Decimal | int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        text = "-" + text[2:] if text.startswith("-$") else text.removeprefix("$")
        try:
            if "_" in text:  # Decimal() would take "1_000"; a spreadsheet never writes it
                raise InvalidOperation
            number = Decimal(text)
        except InvalidOperation:
            raise ImportRowError(f"{loc}: {name} is not a number: {value.strip()!r}") from None
    else:
        raise ImportRowError(f"{loc}: {name} must be a number")
    if not number.is_finite():
        raise ImportRowError(f"{loc}: {name} is not a finite number: {value!r}")
    return number


def _money(value: Any, loc: str, name: str, *, signed: bool = False) -> int | None:
    """USD to nano-dollars, exactly; "$1.50" is accepted, a negative cost is not."""
    number = _number(value, loc, name)
    if number is None:
        return None
    if number < 0 and not signed:
        raise ImportRowError(f"{loc}: {name} is negative: {number}")
    if abs(number) > MAX_AMOUNT_USD:  # would overflow the ledger's int64 nano-dollars
        raise ImportRowError(f"{loc}: {name} {number} is above the maximum of ${MAX_AMOUNT_USD:,} per row")
    return nanos_from_usd(number)


def _count(value: Any, loc: str, name: str, default: int = 0) -> int:
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    if type(value) is str and value.isascii() and value.isdigit() and len(value) < 19:
        return _capped(int(value), loc, name)
    number = _number(value, loc, name)
    if number is None:
        return default
    if number != number.to_integral_value() or number < 0:
        raise ImportRowError(f"{loc}: {name} must be a whole number >= 0, got {number}")
    return _capped(int(number), loc, name)


def _capped(count: int, loc: str, name: str) -> int:
    if count > MAX_COUNT:  # SQLite stores int64, and sums of them must not overflow
        raise ImportRowError(f"{loc}: {name} {count} is above the maximum of {MAX_COUNT:,} per row")
    return count


def _real(value: Any, loc: str, name: str) -> float | None:
    number = _number(value, loc, name)
    return None if number is None else float(number)


_FLAGS = {"true": 1, "false": 0, "1": 1, "0": 0, "yes": 1, "no": 0, "t": 1, "f": 0}


def _flag(value: Any, loc: str, name: str) -> int | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    flag = _FLAGS.get(str(value).strip().lower())
    if flag is None:
        raise ImportRowError(f"{loc}: {name} must be true or false, got {value!r}")
    return flag


def _reasons(value: Any, loc: str) -> tuple[str, ...]:
    """A JSON array of strings (text, or already a list in a JSON row)."""
    if _blank(value) or value == "[]":
        return ()
    items = value
    if isinstance(value, str):
        try:
            items = json.loads(value)
        except ValueError:
            raise ImportRowError(f"{loc}: quality_reasons must be a JSON array of strings") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ImportRowError(f"{loc}: quality_reasons must be a JSON array of strings")
    return tuple(items)


def _timestamp(value: Any, loc: str, tz: str) -> str:
    """Our format passes through; any ISO 8601 date or date-time is converted to UTC
    (a naive one is read in ``tz``, the ledger's time zone)."""
    text = _required_text(value, loc, "timestamp")
    try:
        if _OUR_TS.fullmatch(text):
            datetime.fromisoformat(text[:-1])  # validates the calendar date and time
            return text
        if len(text) == 10:
            moment = datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), _zone(tz))
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=_zone(tz))
        in_range = 1970 <= moment.astimezone(UTC).year <= 9998
    except ValueError:
        raise ImportRowError(f"{loc}: timestamp is not an ISO 8601 date or date-time: {text!r}") from None
    except OverflowError:  # beyond year 1 or 9999 once in UTC
        in_range = False
    if not in_range:
        raise ImportRowError(f"{loc}: timestamp is out of range: {text!r}")
    return format_ts(moment)


@lru_cache(maxsize=8)
def _zone(tz: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(tz)


# --- rows to requests -----------------------------------------------------------------


class _Parser:
    """Turns records into validated requests. Deterministic, so both passes derive the
    same ids; keeps only what the checks need (ids seen, digests of plain rows)."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self.seen_requests: set[int] = set()
        self.plain_digests: set[int] = set()
        self.plain_repeats: dict[int, int] = {}
        self.ignored: set[str] = set()
        self.rows = 0

    def requests(self, records: Iterable[tuple[str, dict[str, Any]]], *, canonical: bool
                 ) -> Iterator[_Request]:
        """One request per plain row, or per run of rows sharing a ``request_id``."""
        current: _Request | None = None
        for loc, raw in records:
            self.rows += 1
            row = raw if canonical else _canonical_object(raw, self.ignored)
            request_id = _code(row.get("request_id"), loc, "request_id")
            if current is not None and current.id == request_id:
                self._add_call(current, loc, row)
                continue
            if current is not None:
                yield _finish(current)
                current = None
            if request_id is None:
                yield _finish(self._plain(loc, row))
            else:
                current = self._start(loc, row, request_id)
        if current is not None:
            yield _finish(current)

    def _start(self, loc: str, row: dict[str, Any], request_id: str) -> _Request:
        key = _digest(request_id)
        if key in self.seen_requests:
            raise ImportRowError(f"{loc}: rows of request {request_id} are not together "
                                 "(keep each request's rows next to each other)")
        self.seen_requests.add(key)
        request = _request_fields(loc, row, request_id, self.tz)
        if _callless(row):
            request.callless = True
        else:
            self._add_call(request, loc, row)
        return request

    def _add_call(self, request: _Request, loc: str, row: dict[str, Any]) -> None:
        user = _required_text(row.get("user"), loc, "user")
        if user != request.user:
            raise ImportRowError(f"{loc}: request {request.id} has rows for users "
                                 f"{request.user!r} and {user!r}")
        if request.callless or _callless(row):
            raise ImportRowError(f"{loc}: request {request.id} has a row without a model call "
                                 "(no id, no model) besides other rows")
        call = _call_fields(loc, row, self.tz, default_seq=len(request.calls))
        if call.id is None:
            call.id = f"{request.id}-{call.seq}"
        if any(c.id == call.id for c in request.calls):
            raise ImportRowError(f"{loc}: call {call.id} appears twice")
        request.calls.append(call)

    def _plain(self, loc: str, row: dict[str, Any]) -> _Request:
        """A row of history from elsewhere: one request with one call, id from content."""
        request = _request_fields(loc, row, "", self.tz)
        call = _call_fields(loc, row, self.tz, default_seq=0)
        content = "\x1f".join(str(v) for v in (
            request.ts, request.user, request.status, request.domain, request.query,
            call.model, call.model_id, call.provider, call.role, call.status, call.input_tokens,
            call.output_tokens, call.cached_tokens, call.reasoning_tokens, call.cost_nusd,
            call.latency_ms, call.answer, call.error))
        key = _digest(content)
        repeat = 0
        if key in self.plain_digests:
            repeat = self.plain_repeats.get(key, 0) + 1
            self.plain_repeats[key] = repeat
        else:
            self.plain_digests.add(key)
        request.id = "imp-" + hashlib.blake2b(f"{content}\x1f#{repeat}".encode(),
                                              digest_size=12).hexdigest()
        call.id = call.id or f"{request.id}-0"
        call.role = call.role or "verifier"
        if call.accepted is None and call.status == "ok":
            call.accepted = 1
        request.calls.append(call)
        return request


def _callless(row: dict[str, Any]) -> bool:
    """Our export's row for a request that made no model call (blocked by its budget)."""
    return _blank(row.get("id")) and _blank(row.get("model")) and _blank(row.get("cost"))


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _optional(row: dict[str, Any], loc: str, name: str, parse: Any, missing: Any = None, **kw: Any) -> Any:
    """``parse`` the column ``name`` when it has a value, else ``missing``."""
    value = row.get(name)
    return missing if value is None else parse(value, loc, name, **kw)


def _request_fields(loc: str, row: dict[str, Any], request_id: str, tz: str) -> _Request:
    g = row.get
    confidence = _optional(row, loc, "domain_confidence", _real)
    latency = _optional(row, loc, "request_latency_ms", _real)
    baseline = _optional(row, loc, "verifier_only_cost", _money)
    savings = _optional(row, loc, "savings", _money, signed=True)
    draft_accepted = _optional(row, loc, "draft_accepted", _flag)
    escalated = _optional(row, loc, "escalated", _flag)
    return _Request(
        id=request_id, ts=_timestamp(g("timestamp"), loc, tz),
        user=_required_text(g("user"), loc, "user"),
        status=_code(g("request_status"), loc, "request_status", "ok") or "ok",
        error=_text(g("request_error"), loc, "request_error"),
        query=_text(g("query"), loc, "query"), domain=_text(g("domain"), loc, "domain"),
        domain_confidence=confidence, draft_accepted=draft_accepted, escalated=escalated,
        verifier_only_nusd=baseline, savings_nusd=savings,
        enforcement=_code(g("enforcement"), loc, "enforcement", "allow") or "allow",
        enforcement_message=_text(g("enforcement_message"), loc, "enforcement_message"),
        latency_ms=latency, external_id=_text(g("external_id"), loc, "external_id"),
    )


def _call_fields(loc: str, row: dict[str, Any], tz: str, *, default_seq: int) -> _Call:
    g = row.get
    model = _required_text(g("model"), loc, "model")
    cost = _money(g("cost"), loc, "cost")
    if cost is None:
        raise ImportRowError(f"{loc}: cost is empty")
    model_id = _text(g("model_id"), loc, "model_id")
    model_id = model_id.strip() if model_id and model_id.strip() else model
    provider = _text(g("provider"), loc, "provider")
    counts = []
    for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"):
        v = g(name)
        counts.append(0 if v is None else _count(v, loc, name))
    seq = _optional(row, loc, "seq", _count, default_seq, default=default_seq)
    attempts = _optional(row, loc, "attempts", _count, 1, default=1)
    latency = _optional(row, loc, "latency_ms", _real)
    quality = _optional(row, loc, "quality_score", _real)
    accepted = _optional(row, loc, "accepted", _flag)
    v = g("quality_reasons")
    reasons = () if v is None else _reasons(v, loc)
    return _Call(
        id=_code(g("id"), loc, "id"), ts=_timestamp(g("timestamp"), loc, tz),
        model=model, model_id=model_id,
        provider=provider.strip() if provider and provider.strip() else infer_provider(model_id),
        role=_code(g("role"), loc, "role"), seq=seq,
        status=_code(g("status"), loc, "status", "ok") or "ok",
        input_tokens=counts[0], output_tokens=counts[1], cached_tokens=counts[2],
        reasoning_tokens=counts[3], cost_nusd=cost,
        cost_source=_code(g("cost_source"), loc, "cost_source", "import") or "import",
        latency_ms=0.0 if latency is None else latency, attempts=attempts,
        finish_reason=_text(g("finish_reason"), loc, "finish_reason"), quality_score=quality,
        quality_reasons=reasons, accepted=accepted, answer=_text(g("answer"), loc, "answer"),
        error=_text(g("error"), loc, "error"),
    )


# --- the two passes ---------------------------------------------------------------------


def _record(r: _Request) -> RequestRecord:
    """A parsed request as the ledger's record; what the file does not say is derived
    from its calls the way the ledger derives it (schema.derive)."""
    calls = tuple(
        CallRecord(id=c.id or "", request_id=r.id, ts=c.ts, seq=c.seq, role=c.role or "verifier",
                   model=c.model, model_id=c.model_id, provider=c.provider, status=c.status,
                   input_tokens=c.input_tokens, output_tokens=c.output_tokens,
                   cached_tokens=c.cached_tokens, reasoning_tokens=c.reasoning_tokens,
                   cost_nusd=c.cost_nusd, cost_source=c.cost_source, latency_ms=c.latency_ms,
                   attempts=c.attempts, finish_reason=c.finish_reason, quality_score=c.quality_score,
                   quality_reasons=c.quality_reasons, answer=c.answer, error=c.error,
                   accepted=None if c.accepted is None else bool(c.accepted))
        for c in r.calls)
    cost = sum(c.cost_nusd for c in calls)
    ok = r.status == "ok"
    models = answering(calls)
    first = models[0] if models else None
    last = models[-1] if models else None
    derived = derive(r.status, calls, cost, r.verifier_only_nusd)
    return RequestRecord(
        id=r.id, ts=r.ts, user=r.user, status=r.status, query=r.query,
        answer=last.answer if ok and last else None, domain=r.domain,
        domain_confidence=r.domain_confidence, model=last.model if last else None,
        draft_model=first.model if first else None,
        draft_accepted=derived.draft_accepted if r.draft_accepted is None else bool(r.draft_accepted),
        escalated=derived.escalated if r.escalated is None else bool(r.escalated),
        quality_score=last.quality_score if last else None,
        quality_reasons=last.quality_reasons if last else (), cost_nusd=cost,
        verifier_only_cost_nusd=derived.verifier_only_cost_nusd if r.verifier_only_nusd is None
        else r.verifier_only_nusd,
        savings_nusd=derived.savings_nusd if r.savings_nusd is None else r.savings_nusd,
        enforcement=r.enforcement, enforcement_message=r.enforcement_message,
        latency_ms=sum(c.latency_ms for c in calls) if r.latency_ms is None else r.latency_ms,
        error=r.error, calls=calls, external_id=r.external_id,
    )


def _finish(request: _Request) -> _Request:
    """Give calls without a role the cascade's: drafts, then the final verifier."""
    calls = request.calls
    for index, call in enumerate(calls):
        if call.role is None:
            call.role = "verifier" if index == len(calls) - 1 else "draft"
    return request


ProgressFn = Callable[[str, int], None]


@dataclass
class _Reading:
    fmt: str
    ignored: tuple[str, ...]
    parser: _Parser
    requests: Iterator[_Request]


def _read(path: Path, fmt: str, tz: str) -> _Reading:
    where = str(path)
    parser = _Parser(tz)
    if fmt == "csv":
        ignored, records = _csv_records(path, where)
        return _Reading(fmt, ignored, parser, parser.requests(records, canonical=True))
    records = _jsonl_records(path, where) if fmt == "jsonl" else _json_records(path, where)
    return _Reading(fmt, (), parser, parser.requests(_with_required(records), canonical=False))


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


def validate_file(path: Path, fmt: str | None = None, *, timezone: str = "UTC",
                  on_progress: ProgressFn | None = None) -> ImportResult:
    """Pass one: parse and check every row, write nothing. Raises ImportRowError."""
    fmt = detect_format(path, fmt)
    reading = _read(path, fmt, timezone)
    requests = calls = 0
    for request in reading.requests:
        requests += 1
        calls += len(request.calls)
        if on_progress and requests % PROGRESS_EVERY == 0:
            on_progress("checking", requests)
    if requests == 0:
        raise ImportRowError(f"{path}: no rows to import")
    ignored = reading.ignored or tuple(sorted(reading.parser.ignored))
    return ImportResult(path, fmt, reading.parser.rows, requests, calls,
                        ignored_columns=ignored)


def import_file(ledger: LedgerStore, path: Path, fmt: str | None = None, *, timezone: str = "UTC",
                on_progress: ProgressFn | None = None) -> ImportResult:
    """Validate the whole file, then insert it in one transaction (all or nothing).
    Rows already in the ledger (same ids) are skipped, so importing twice is harmless."""
    checked = validate_file(path, fmt, timezone=timezone, on_progress=on_progress)
    reading = _read(path, checked.format, timezone)

    reported = [0]

    def progress(done: int) -> None:  # record_many reports every chunk; we every PROGRESS_EVERY
        if on_progress and done // PROGRESS_EVERY != reported[0] // PROGRESS_EVERY:
            on_progress("importing", done)
        reported[0] = done

    added = ledger.record_many((_record(r) for r in reading.requests), on_progress=progress)
    return ImportResult(checked.path, checked.format, checked.rows, checked.requests, checked.calls,
                        added.requests, added.calls, checked.ignored_columns)
