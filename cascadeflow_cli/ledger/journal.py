"""The side journal: paid answers that are not (yet) in the ledger.

A provider call costs money the moment it answers, but the ledger commit comes later and
can fail (a read-only file, a full disk, a lock held too long) or never happen (Ctrl-C,
SIGTERM, kill -9). So after each answered call the request in flight is written ahead,
as one JSON file per request, into the directory ``<ledger>.journal/`` next to the
ledger (0700; files 0600, written to a temporary name and renamed, so a file is whole or
absent). A commit that succeeds deletes it. A commit that fails rewrites it with the
final record and fsyncs it (then it is the only copy). Every later open of the ledger
replays the directory into the ledger, idempotently by request id, and deletes what it
recorded; until then nothing new can be asked of that ledger (it is not writable), so
budgets never run ahead of it.

Written ahead, a request is one line appended to this process's write-ahead log in the
same directory (``ahead-<pid>-<n>.log``, see ``write_ahead``), not a file of its own:
creating, renaming and deleting a file per request cost a 32-thread batch ~0.8 ms of CPU
a row (kernel time on the directory, measured in-process on 3,000 rows, load ~9), an
append one system call. The process holds an exclusive ``flock`` on its logs while it
lives; a log whose lock can be taken belongs to a process that died, and ``pending``
first turns its lines into entries (files) like the others, the last line of a request
winning. A log whose requests are all settled (committed, or rewritten as a file of
their own) is deleted.

A call about to be sent is written ahead too, as a short line of its own (``write_in_flight``:
the request's own columns and the call's row as charged if it never answers: about half
what the whole record costs, bench/in_flight.py): a provider bills a request it received even when its
client died. The request's next line supersedes it; in a dead process's log, a request
whose last line is a call in flight becomes its last whole line (if any) with that call
added (``_merged``).

A shadow verification's call (engine/shadow.py), paid after its request was recorded, is
journaled the same way as an entry of its own, named by the call's id and holding the
``ShadowOutcome`` under ``"shadow"``; its replay adds the call to the request (once).

Write-ahead entries are not fsynced (the ledger's own WAL commits are not either, with
``synchronous=NORMAL``): they survive the process dying, as the ledger does. Only what
the ledger could not take is forced to disk.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from cascadeflow_cli.errors import LedgerError
from cascadeflow_cli.ledger import ahead_log
from cascadeflow_cli.ledger.labels import CallSignals, ShadowOutcome
from cascadeflow_cli.ledger.records import CallRecord, RequestRecord
from cascadeflow_cli.ledger.schema import derive

VERSION = 1
Entry = RequestRecord | ShadowOutcome  # what a journal file holds
# one encoder, not json.dumps(..., ensure_ascii=False), which builds a JSONEncoder a call
_to_json = json.JSONEncoder(ensure_ascii=False).encode
_made: set[Path] = set()  # journal directories this process has made
_refused: set[Path] = set()  # ledgers that refused a record of this process: it waits in their journal
_known: set[Path] = set()  # journal directories of the ledgers this process opened
_due: set[Path] = set()  # ... holding a dead process's log that its reservation waits for


@functools.lru_cache(maxsize=64)
def journal_dir(ledger_path: Path) -> Path:
    # cached: a served request asks twice (written ahead, then settled), and pathlib's
    # with_name was ~1.3% of its CPU under the GIL (py-spy --gil, 50 clients)
    return ledger_path.with_name(ledger_path.name + ".journal")


def _entry_path(directory: Path, request_id: str) -> Path:
    return directory / f"{request_id}.json"


def entry_id(record: Entry) -> str:
    """The name of ``record``'s entry: the request's id, or a shadow call's own id."""
    if isinstance(record, ShadowOutcome):
        assert record.call is not None  # only a call that was made is journaled
        return record.call.id
    return record.id


def write(
    ledger_path: Path, record: Entry, reservation_id: str | None, *, durable: bool = False
) -> Path:
    """Write (or replace) the journal entry of ``record``; fsynced when ``durable``.
    Raises OSError when the journal cannot be written (the caller decides what that means)."""
    directory = _directory(ledger_path)
    key = entry_id(record)
    final = _write_file(directory, key, _encode(record, reservation_id), durable=durable)
    ahead_log.own_file(directory, key)  # deleted when the request is committed
    if durable:  # the file is the request's entry now, whatever its log holds
        ahead_log.settle(directory, key)
        _refused.add(ledger_path)
    return final


def retry_refused(ledger: Any) -> None:
    """Before a request of a long-lived process (`serve`) is paid for: if the ledger
    refused one of ours, or a budget check met a dead process's log (``left_by``), record
    the journal now. Read only at open, the journal held it while
    the process went on paying, its spend in no budget once its reservation expired;
    while it cannot be recorded, ``journal_waiting`` refuses new requests."""
    if ledger.path in _refused or (_due and journal_dir(ledger.path) in _due):
        _due.discard(journal_dir(ledger.path))
        ledger.journal_waiting = ledger.replay_journal()
        if not ledger.journal_waiting:
            _refused.discard(ledger.path)


def left_by(pid: int) -> bool:
    """Whether a log of process ``pid`` (dead: the caller knows) waits in a journal this
    process opened. Its reservation is then kept, and counted, until the log is recovered
    (``retry_refused``, or any command's open), whose request takes its place in one
    transaction: dropped first, a call it had in flight counted in no budget meanwhile
    (a `serve` process's checks found it dead long before anyone opened the ledger)."""
    found = False
    for directory in list(_known):
        try:
            waiting = any(directory.glob(f"{ahead_log.PREFIX}{pid}-*{ahead_log.SUFFIX}"))
        except OSError:
            continue
        if waiting:
            _due.add(directory)
            found = True
    return found


def write_ahead(ledger_path: Path, record: Entry, reservation_id: str | None) -> None:
    """Journal the request in flight, before its commit: one line appended to this
    process's log (a file of its own where ``flock`` is missing). Raises OSError when it
    cannot be written."""
    directory = _directory(ledger_path)
    data = _encode(record, reservation_id)
    if not ahead_log.append(directory, entry_id(record), data):
        write(ledger_path, record, reservation_id)


def write_in_flight(
    ledger_path: Path, head: dict[str, Any], call: dict[str, Any], reservation_id: str | None
) -> bool:
    """Journal a call about to be sent: one short line appended to this process's log.
    ``head`` holds the request's columns (the RequestRecord fields a request without any
    answer has: id, ts, user, status, error, query, answer, domain...), ``call`` its row
    (``plain_call``) as charged if it never answers. False without ``flock`` (the caller
    then journals the whole record); raises OSError when it cannot be written."""
    if ahead_log.fcntl is None:
        return False
    data = _to_json({"v": VERSION, "reservation_id": reservation_id,
                     "in_flight": {"request": head, "call": call}}).encode("utf-8")
    return ahead_log.append(_directory(ledger_path), head["id"], data)


def _directory(ledger_path: Path) -> Path:
    directory = journal_dir(ledger_path)
    if directory not in _made:  # once a process (and again if it went): mkdir was 1.5% of a served request
        _make(directory)
        _made.add(directory)
    return directory


def _make(directory: Path) -> None:
    """The journal directory, and its parent if need be: a PostgreSQL ledger's journal is
    in the user data dir, which a user who never had a SQLite ledger does not have yet
    (without it a paid answer the server refused was recorded nowhere)."""
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)


def _encode(record: Entry, reservation_id: str | None) -> bytes:
    if isinstance(record, ShadowOutcome):
        body: dict[str, Any] = {"shadow": {**{n: getattr(record, n) for n in _names(ShadowOutcome)},
                                           "call": plain_call(record.call)}}
    else:
        body = {"request": _plain(record)}
    return _to_json({"v": VERSION, "reservation_id": reservation_id, **body}).encode("utf-8")


def _write_file(directory: Path, request_id: str, data: bytes, *, durable: bool = False) -> Path:
    """The entry file of one request, whole or absent (a temporary name, then renamed)."""
    final = _entry_path(directory, request_id)
    temp = final.with_suffix(".tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except FileNotFoundError:
        _make(directory)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, final)
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return final


def discard(ledger_path: Path, request_id: str) -> None:
    """The request is in the ledger: its entry is no longer needed."""
    directory = journal_dir(ledger_path)
    ahead_log.settle(directory, request_id)
    if ahead_log.disown_file(directory, request_id):
        with contextlib.suppress(OSError):
            _entry_path(directory, request_id).unlink()


def pending(ledger_path: Path, unreadable: list[tuple[Path, str]] | None = None
            ) -> list[tuple[Path, Entry, str | None]]:
    """Entries waiting to be recorded, oldest first (requests before the shadow calls
    that add to them). An entry file that does not parse (files are renamed in whole, so
    it never will: damaged, or a number no ledger column holds) is skipped, and added
    with the reason to ``unreadable`` when given (``replay_all`` quarantines it)."""
    directory = journal_dir(ledger_path)
    _known.add(directory)
    ahead_log.recover(directory, functools.partial(_keep, directory))  # logs of processes that died
    try:
        names = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    except OSError:
        return []
    entries = []
    for path in names:
        try:
            data = json.loads(path.read_bytes())
            record = _shadow(data["shadow"]) if "shadow" in data else _record(data["request"])
            entries.append((path, record, data.get("reservation_id")))
        except OSError:
            continue
        except (ValueError, KeyError, TypeError) as exc:
            if unreadable is not None:
                unreadable.append((path, f"not a journal entry this cascade can read: {_why(exc)}"))
    entries.sort(key=lambda entry: isinstance(entry[1], ShadowOutcome))  # stable: oldest first within
    return entries


def replay(ledger: Any, record: Entry, reservation_id: str | None) -> None:
    """Record one pending entry into ``ledger`` (a LedgerStore): idempotent, a request or
    shadow call already there is skipped. Raises LedgerError when the ledger refuses."""
    if isinstance(record, ShadowOutcome):
        ledger.record_shadow(record, reservation_id)
    else:
        ledger.record(record, reservation_id)


def replay_all(store: Any) -> int:
    """Record every pending entry into ``store`` (a LedgerStore) and delete what it took;
    returns how many still wait: the ledger could not take them now (not writable, a full
    disk, a lock), and ``store.journal_error`` says why. An entry it refuses for good (a
    constraint, a value it cannot hold) is quarantined (``quarantine``) and listed in
    ``store.journal_refused`` with the reason: waiting, it refused every later request
    of that ledger for ever."""
    unreadable: list[tuple[Path, str]] = []
    entries = pending(store.path, unreadable)
    for path, reason in unreadable:
        _set_aside(store, path, reason)
    for number, (path, record, reservation_id) in enumerate(entries):
        if not store.writable():
            return len(entries) - number
        try:
            replay(store, record, reservation_id)
        except LedgerError as exc:
            if not refused_for_good(exc):
                store.journal_error = str(exc)
                return len(entries) - number
            _set_aside(store, path, str(exc))
            continue
        except (ValueError, TypeError, OverflowError, KeyError) as exc:  # a value no column takes
            _set_aside(store, path, f"the ledger cannot hold it: {_why(exc)}")
            continue
        with contextlib.suppress(OSError):
            path.unlink()
    return 0


def refused_for_good(exc: BaseException) -> bool:
    """The ledger will never take the entry: a constraint failed or a value does not fit
    (the DB-API's IntegrityError / DataError, sqlite3's ProgrammingError for a value it
    cannot bind). A full disk, a lock, a read-only file or a lost server (OperationalError)
    pass with time. Our LedgerErrors are raised ``from None``: the driver's error is the
    context."""
    import sqlite3

    cause = exc.__cause__ or exc.__context__
    if cause is None:
        return False
    if isinstance(cause, sqlite3.ProgrammingError):
        return True
    return any(k.__name__ in ("IntegrityError", "DataError") for k in type(cause).__mro__)


def refused_dir(ledger_path: Path) -> Path:
    return ledger_path.with_name(ledger_path.name + ".journal-refused")


def quarantine(ledger_path: Path, entry: Path, reason: str) -> Path:
    """Move ``entry`` into ``<ledger>.journal-refused/``, its bytes untouched (it is a paid
    call: never deleted), with ``reason`` beside it in ``<name>.reason``. Returns where it
    is now; raises OSError when it cannot be moved."""
    directory = refused_dir(ledger_path)
    directory.mkdir(mode=0o700, exist_ok=True)
    target, n = directory / entry.name, 1
    while target.exists():  # the same id refused twice: keep both
        target, n = directory / f"{entry.stem}-{n}{entry.suffix}", n + 1
    target.with_suffix(".reason").write_text(reason + "\n", encoding="utf-8")
    os.replace(entry, target)
    return target


def _set_aside(store: Any, path: Path, reason: str) -> None:
    with contextlib.suppress(OSError):  # cannot move it (a read-only directory): left, skipped
        store.journal_refused.append((quarantine(store.path, path, reason), reason))


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def why(error: str | None) -> str:
    """`` (the ledger refused one: ...)`` for a message about entries still waiting: a
    full disk passes, an entry the ledger can never take needs a person to see why."""
    return f" (the ledger refused one: {error})" if error else ""


def _keep(directory: Path, request_id: str, lines: tuple[bytes, ...]) -> None:
    """A request from a dead process's log as an entry file, unless it has one (newer)."""
    if not _entry_path(directory, request_id).exists():
        _write_file(directory, request_id, _merged(lines))


def _merged(lines: tuple[bytes, ...]) -> bytes:
    """A request's entry from its last lines in a dead process's log (ahead_log): the
    last line when it is whole; a call in flight (``write_in_flight``) added to the whole
    line before it, or made a request of its own. A line that does not parse is kept as
    it is (``pending`` sets it aside, byte for byte)."""
    last = lines[-1]
    try:
        data = json.loads(last)
        intent = data["in_flight"]
        base = _record(json.loads(lines[0])["request"]) if len(lines) > 1 else None
        record = _with_call(base, intent["request"], _call(intent["call"]))
    except (ValueError, KeyError, TypeError):
        return last
    return _encode(record, data.get("reservation_id"))


def _with_call(base: RequestRecord | None, head: dict[str, Any], call: CallRecord) -> RequestRecord:
    """``base`` (or a request of ``head``'s columns) with ``call``, in flight, added: the
    request as the cascade would have recorded it had it ended then (engine/attempts.py)."""
    record = base if base is not None else RequestRecord(**head)
    calls = (*(c for c in record.calls if c.id != call.id), call)
    cost = sum(c.cost_nusd for c in calls)
    derived = derive(head["status"], calls, cost)
    final = {} if call.role == "sample" else {  # a draft's sample is part of its draft
        "model": call.model, "quality_score": None, "quality_reasons": (), "quality_threshold": None,
        "calibrated": False}
    return replace(record, **final, status=head["status"], error=head["error"], answer=None,
                   draft_model=record.draft_model or call.model, calls=calls, cost_nusd=cost,
                   draft_accepted=derived.draft_accepted, escalated=derived.escalated,
                   verifier_only_cost_nusd=derived.verifier_only_cost_nusd, savings_nusd=derived.savings_nusd)


def _plain(record: RequestRecord) -> dict[str, Any]:
    """Shallow, unlike ``dataclasses.asdict`` (which deep-copies every value: most of the
    cost of a batch row's journal entry)."""
    row = {name: getattr(record, name) for name in _names(RequestRecord)}
    row["calls"] = [plain_call(c) for c in record.calls]
    row["signals"] = [
        {name: _listed(getattr(s, name)) for name in _names(CallSignals)} for s in record.signals
    ]
    return row


def plain_call(call: CallRecord | None) -> dict[str, Any] | None:
    """A call row as a journal line holds it (its fields by name)."""
    return None if call is None else {name: getattr(call, name) for name in _names(CallRecord)}


@functools.cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _listed(value: Any) -> Any:
    """JSON-able: a tuple of log-probabilities as a list, a mapping of features as a dict."""
    if isinstance(value, tuple):
        return list(value)
    return dict(value) if hasattr(value, "items") else value


_INT64 = range(-(2**63), 2**63)


def _storable(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` unchanged, or ValueError when a number in it cannot be a ledger column (an
    entry written by a version that trusted a provider's 1e30 tokens): such an entry is
    skipped like a torn one, not retried on every open of the ledger, failing each."""
    for name, value in row.items():
        if isinstance(value, int) and value not in _INT64:
            raise ValueError(f"{name} does not fit the ledger: {value}")
    return row


def _call(data: dict[str, Any]) -> CallRecord:
    return CallRecord(**{**_storable(data), "quality_reasons": tuple(data.get("quality_reasons") or ())})


def _shadow(data: dict[str, Any]) -> ShadowOutcome:
    if not isinstance(data.get("call"), dict):
        raise ValueError("a shadow entry without its call")
    return ShadowOutcome(**{**_storable(data), "call": _call(data["call"])})


def _record(data: dict[str, Any]) -> RequestRecord:
    _storable(data)
    calls = tuple(_call(c) for c in data["calls"])
    reasons = tuple(data.get("quality_reasons") or ())
    signals = tuple(
        CallSignals(**{**sig, "logprobs": tuple(sig["logprobs"]) if sig.get("logprobs") else None})
        for sig in data.get("signals") or ()
    )
    return RequestRecord(**{**data, "calls": calls, "quality_reasons": reasons, "signals": signals})
