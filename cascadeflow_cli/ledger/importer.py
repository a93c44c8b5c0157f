"""Import ledger history: our own export (CSV, JSON, JSONL) or plain usage history from
elsewhere with at least ``timestamp,user,model,cost``.

All or nothing, in two passes over the file: the first parses and validates every row and
writes nothing (one bad row stops it with ``file:line: reason``); the second parses again
and inserts everything in one transaction, so even a full disk mid-way leaves the ledger
as it was. Memory stays flat whatever the file size: rows stream through both passes.
A pipe or device is copied to a temporary file first (it can be read once), and a file
that changes between the first pass and the commit aborts the import.

Idempotent: rows from our export keep their ids; a row of plain history gets an id derived
from its content (and from how many identical rows came before it in the file), so
importing the same file twice inserts nothing the second time (``record_many`` skips ids
the ledger holds).

The seams: import_read.py sniffs the format and streams rows; import_values.py coerces
each field; here rows become requests with content-derived ids, then ledger records
(schema.derive fills what the file does not say), stored by ``LedgerStore.record_many``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.ledger.budgets import known_users
from cascadeflow_cli.ledger.import_read import (  # noqa: F401  (FORMATS, detect_format: public here)
    FORMATS,
    REQUIRED,
    _canonical_object,
    _csv_records,
    _json_records,
    _jsonl_records,
    _with_required,
    changed,
    detect_format,
    identity,
    not_compressed,
    readable_twice,
    unchanged,
)
from cascadeflow_cli.ledger.import_values import (
    ImportRowError,
    _blank,
    _choice,
    _code,
    _count,
    _duration,
    _flag,
    _fraction,
    _money,
    _reasons,
    _required_text,
    _text,
    _timestamp,
    _user,
)
from cascadeflow_cli.ledger.schema import (
    CALL_ROLES,
    CALL_STATUSES,
    REQUEST_STATUSES,
    CallRecord,
    RequestRecord,
    answering,
    derive,
)
from cascadeflow_cli.model_map import infer_provider
from cascadeflow_cli.text import equivalent_name

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.storage import LedgerStore

PROGRESS_EVERY = 10_000


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


# --- rows to requests -----------------------------------------------------------------


class _Parser:
    """Turns records into validated requests. Deterministic, so both passes derive the
    same ids; keeps only what the checks need (ids seen, digests of plain rows)."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self.seen_requests: set[int] = set()
        self.plain_digests: set[int] = set()
        self.plain_repeats: dict[int, int] = {}
        self.foreign_ids: set[int] = set()  # ids of plain rows (history from elsewhere)
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
        user = _user(row.get("user"), loc)
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
        # A plain row's own id is another system's, not one of ours: taken as the call's id
        # it met the same "1", "2"... of an earlier import and the call was dropped (the
        # request kept its cost, with no call behind it: hostile-4). The id still marks a
        # row listed twice in one file.
        if call.id is not None:
            foreign = _digest(call.id)
            if foreign in self.foreign_ids:
                raise ImportRowError(f"{loc}: id {call.id} appears twice in the file")
            self.foreign_ids.add(foreign)
        call.id = f"{request.id}-0"
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
    confidence = _optional(row, loc, "domain_confidence", _fraction)
    latency = _optional(row, loc, "request_latency_ms", _duration)
    baseline = _optional(row, loc, "verifier_only_cost", _money)
    savings = _optional(row, loc, "savings", _money, signed=True)
    draft_accepted = _optional(row, loc, "draft_accepted", _flag)
    escalated = _optional(row, loc, "escalated", _flag)
    return _Request(
        id=request_id, ts=_timestamp(g("timestamp"), loc, tz),
        user=_user(g("user"), loc),
        status=_choice(g("request_status"), loc, "request_status", REQUEST_STATUSES) or "ok",
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
    latency = _optional(row, loc, "latency_ms", _duration)
    quality = _optional(row, loc, "quality_score", _fraction)
    accepted = _optional(row, loc, "accepted", _flag)
    v = g("quality_reasons")
    reasons = () if v is None else _reasons(v, loc)
    return _Call(
        id=_code(g("id"), loc, "id"), ts=_timestamp(g("timestamp"), loc, tz),
        model=model, model_id=model_id,
        provider=provider.strip() if provider and provider.strip() else infer_provider(model_id),
        role=_choice(g("role"), loc, "role", CALL_ROLES), seq=seq,
        status=_choice(g("status"), loc, "status", CALL_STATUSES) or "ok",
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


def _stored_users(ledger: LedgerStore) -> Callable[[str], str]:
    """A row's user (NFC, ``_user``) as the ledger keys that person: the legacy form an
    older version stored ("Jose\\u0301" decomposed) where it holds one, as `ask` does
    (``budgets.ledger_user``); the ledger's names are read once, on the first non-ASCII."""
    known = functools.cache(lambda: known_users(ledger))

    @functools.cache
    def stored(user: str) -> str:
        return user if user.isascii() else equivalent_name(user, known()) or user

    return stored


@dataclass
class _Reading:
    fmt: str
    ignored: tuple[str, ...]
    parser: _Parser
    requests: Iterator[_Request]


def _read(path: Path, fmt: str, tz: str, where: str) -> _Reading:
    parser = _Parser(tz)
    if fmt == "csv":
        ignored, records = _csv_records(path, where)
        return _Reading(fmt, ignored, parser, parser.requests(records, canonical=True))
    records = _jsonl_records(path, where) if fmt == "jsonl" else _json_records(path, where)
    return _Reading(fmt, (), parser, parser.requests(_with_required(records), canonical=False))


def validate_file(path: Path, fmt: str | None = None, *, timezone: str = "UTC",
                  on_progress: ProgressFn | None = None) -> ImportResult:
    """Pass one: parse and check every row, write nothing. Raises ImportRowError."""
    with readable_twice(path, fmt) as readable:
        return _validate(readable, str(path), fmt, timezone, on_progress)


def _validate(path: Path, where: str, fmt: str | None, timezone: str,
              on_progress: ProgressFn | None) -> ImportResult:
    not_compressed(path, where)
    fmt = detect_format(path, fmt)
    reading = _read(path, fmt, timezone, where)
    requests = calls = 0
    for request in reading.requests:
        requests += 1
        calls += len(request.calls)
        if on_progress and requests % PROGRESS_EVERY == 0:
            on_progress("checking", requests)
    if requests == 0:
        raise ImportRowError(f"{where}: no rows to import")
    ignored = reading.ignored or tuple(sorted(reading.parser.ignored))
    return ImportResult(Path(where), fmt, reading.parser.rows, requests, calls,
                        ignored_columns=ignored)


def import_file(ledger: LedgerStore, path: Path, fmt: str | None = None, *, timezone: str = "UTC",
                on_progress: ProgressFn | None = None) -> ImportResult:
    """Validate the whole file, then insert it in one transaction (all or nothing).
    Rows already in the ledger (same ids) are skipped, so importing twice is harmless."""
    with readable_twice(path, fmt) as readable:
        return _import(ledger, readable, str(path), fmt, timezone, on_progress)


def _import(ledger: LedgerStore, path: Path, where: str, fmt: str | None, timezone: str,
            on_progress: ProgressFn | None) -> ImportResult:
    before = identity(path)
    try:
        checked = _validate(path, where, fmt, timezone, on_progress)
    except ImportRowError:  # a half-written row at the end of a file still being written
        if identity(path) != before:
            raise changed(where) from None
        raise
    reading = _read(path, checked.format, timezone, where)

    reported = [0]

    def progress(done: int) -> None:  # record_many reports every chunk; we every PROGRESS_EVERY
        if on_progress and done // PROGRESS_EVERY != reported[0] // PROGRESS_EVERY:
            on_progress("importing", done)
        reported[0] = done

    stored = _stored_users(ledger)
    checked_again = unchanged(reading.requests, path, before, where)
    added = ledger.record_many((_record(replace(r, user=stored(r.user))) for r in checked_again),
                               on_progress=progress)
    return ImportResult(checked.path, checked.format, checked.rows, checked.requests, checked.calls,
                        added.requests, added.calls, checked.ignored_columns)

