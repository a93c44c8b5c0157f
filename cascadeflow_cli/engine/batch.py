"""The batch runner: many queries through the cascade with bounded concurrency.

Exactly once, even across ``kill -9``: a row's output line is written only after its
ledger transaction committed (``Cascade.run`` records before it returns), and a resumed
run skips rows already in the output *and* rows the ledger already holds for this batch
(committed, but killed before their line was written): those are written from the ledger
instead of being asked, and paid for, again. Each request carries the batch row as its
``external_id`` under a unique index, so the ledger itself refuses a second copy.

Threads, not asyncio: the cascade is synchronous, and its time is spent waiting on HTTP.
Each worker thread has its own Cascade, ledger connection and keep-alive HTTP connection
(both kept per thread by the shared ledger and provider);
the main thread reads the input, hands rows out (a bounded window, so memory stays flat),
and writes every result line itself, so output needs no lock. Nothing here prints:
progress goes to a callback.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cascadeflow_cli.errors import CascadeError, InputError, LedgerError, NotRecordedError
from cascadeflow_cli.files import MAX_TEXT_BYTES
from cascadeflow_cli.redact import redact
from cascadeflow_cli.text import is_blank, json_loads, text_problem, unique_keys

if TYPE_CHECKING:
    from cascadeflow_cli.engine.cascade import Cascade

DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class BatchRow:
    """One input row. ``key`` is the id as text: the resume and ledger key."""

    line: int
    id: str | int
    query: str
    user: str | None = None
    domain: str | None = None
    # False when the row has no "id" and its line number stands in (errors say so)
    id_given: bool = field(default=True, compare=False)

    @property
    def key(self) -> str:
        return row_key(self.id)


@dataclass(frozen=True)
class BadRow:
    """An input line that cannot be run; it gets an error line in the output."""

    line: int
    error: str
    id: str | int | None = None

    @property
    def key(self) -> str:
        return row_key(self.id) if self.id is not None else line_key(self.line)

    def result(self) -> dict[str, Any]:
        if self.id is None:
            return {"id": None, "line": self.line, "error": self.error}
        return {"id": self.id, "error": self.error}


def _id_given(item: BatchRow | BadRow) -> bool:
    return item.id_given if isinstance(item, BatchRow) else item.id is not None


def duplicate_message(item: BatchRow | BadRow, first_line: int, first_given: bool) -> str:
    """Why a row shares its key with an earlier one; a row without an "id" is keyed by its
    line number, so say that rather than call it a duplicate of an id it never had."""
    if not _id_given(item):
        return (f"line {item.line}: no 'id', and its line number {item.line} is already the id of "
                f"line {first_line} (give every row an 'id')")
    if not first_given:
        return (f"line {item.line}: id {item.id!r} is also the line number of line {first_line}, "
                "which has no 'id' (give every row an 'id')")
    return f"line {item.line}: duplicate id (first on line {first_line})"


def row_key(row_id: str | int) -> str:
    return row_id if isinstance(row_id, str) else str(row_id)


def line_key(line: int) -> str:
    """The key of a line that has no usable id (malformed JSON and the like)."""
    return f"#line:{line}"


# --- input and output files -------------------------------------------------------------


def read_rows(path: Path) -> Iterator[BatchRow | BadRow]:
    """Rows of a JSONL file, lazily. A malformed line becomes a BadRow, never an exception.
    Lines are decoded one by one, so one bad byte costs one row, not the file."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with fh:
        for line, raw in enumerate(_lines(fh), start=1):
            if raw is None:
                yield BadRow(line, f"line {line}: longer than {MAX_TEXT_BYTES >> 20} MiB, the most cascade "
                                   "reads of one line")
                continue
            if line == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield BadRow(line, f"line {line}: not UTF-8 text")
                continue
            if text.strip():
                yield parse_row(text, line)


def parse_row(text: str, line: int) -> BatchRow | BadRow:
    try:
        data = json_loads(text, object_pairs_hook=unique_keys)
    except ValueError as exc:
        return BadRow(line, f"line {line}: not valid JSON ({exc.args[0].split(':')[0]})")
    if not isinstance(data, dict):
        return BadRow(line, f"line {line}: expected a JSON object with a 'query'")
    row_id = data.get("id", line)
    if isinstance(row_id, bool) or not isinstance(row_id, str | int) or row_id == "":
        return BadRow(line, f"line {line}: 'id' must be a non-empty string or an integer")
    query = data.get("query")
    if not isinstance(query, str) or is_blank(query):
        return BadRow(line, f"line {line}: 'query' must be a non-empty string", row_id)
    for name in ("user", "domain"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return BadRow(line, f"line {line}: '{name}' must be a non-empty string", row_id)
    for name in ("id", "query", "user", "domain"):  # JSON's "\ud800" is no text we can send
        value = data.get(name)
        if isinstance(value, str) and (problem := text_problem(value)):
            return BadRow(line, f"line {line}: '{name}' is not valid UTF-8 text ({problem})",
                          None if name == "id" else row_id)
    return BatchRow(line, row_id, query, data.get("user"), data.get("domain"), id_given="id" in data)


def _lines(fh: IO[bytes], limit: int = MAX_TEXT_BYTES) -> Iterator[bytes | None]:
    """The lines of ``fh``, None for one longer than ``limit`` (skipped to its end a MiB at
    a time): a file without line breaks (a JSON array, an archive) was read whole, twice."""
    while raw := fh.readline(limit + 1):
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw
            continue
        while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
            pass
        yield None


def count_rows(path: Path) -> int:
    """Non-blank lines, counted fast (for the progress bar's total)."""
    count = 0
    with path.open("rb") as fh:
        for raw in _lines(fh):
            if raw is None or raw.strip():
                count += 1
    return count


def scan_output(path: Path) -> tuple[set[str], int]:
    """Keys already answered in an output file, and the length of its complete part.

    A crash can leave the last line half-written: it is not counted, and the caller
    truncates the file to the returned length before appending. A bad line anywhere
    else means the file is not ours to append to.
    """
    keys: set[str] = set()
    good = 0
    try:
        fh = path.open("rb")
    except OSError as exc:  # unreadable: 'unexpected PermissionError'
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with fh:
        lines = iter(fh)
        for number, raw in enumerate(lines, start=1):
            key = _result_key(raw) if raw.endswith(b"\n") else None
            if key is None:
                if next(lines, None) is None:
                    break  # the torn last line
                raise InputError(f"{path}:{number}: not a result line of `cascade batch`; "
                                 "fix or remove it, or write to a new output file")
            if key:
                keys.add(key)
            good += len(raw)
    return keys, good


def _result_key(raw: bytes) -> str | None:
    """The row key of an output line ("" for a blank line), None if it is not one."""
    if not raw.strip():
        return ""
    try:
        data = json_loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or "id" not in data:
        return None
    row_id = data["id"]
    if row_id is None:
        return line_key(data["line"]) if isinstance(data.get("line"), int) else None
    return row_key(row_id) if isinstance(row_id, str | int) and not isinstance(row_id, bool) else None


def warm_up() -> None:
    """Load what every worker would otherwise load at once on its first row: litellm's
    price map (``lru_cache`` does not stop 32 threads parsing it side by side)."""
    from cascadeflow_cli.engine.pricing import load_price_map
    from cascadeflow_cli.errors import PricingError

    with contextlib.suppress(PricingError):  # no litellm: config prices only, as usual
        load_price_map()


# --- running ------------------------------------------------------------------------------


@dataclass
class BatchProgress:
    """Where a batch stands; handed to the progress callback after every row."""

    total: int
    skipped: int = 0  # already in the output when the run started (--resume)
    answered: int = 0  # asked and answered in this run
    recovered: int = 0  # in the ledger but not the output: written from the ledger
    errors: int = 0  # error lines written in this run (bad rows, provider errors, budgets)
    cost_nusd: int = 0  # spent by this run
    started: float = field(default_factory=time.monotonic)
    stopping: bool = False

    @property
    def done(self) -> int:
        """Rows with a result line, this run or before."""
        return self.skipped + self.answered + self.recovered + self.errors

    @property
    def done_this_run(self) -> int:
        return self.answered + self.recovered + self.errors

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Rows a second in this run."""
        return self.done_this_run / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None


@dataclass(frozen=True)
class _Outcome:
    row: BatchRow
    result: dict[str, Any] | None = None
    cost_nusd: int = 0
    error: bool = False
    failure: BaseException | None = None  # the batch must stop (the ledger cannot be written)


_STOP = None  # tells a worker thread to exit


class BatchRunner:
    """Runs rows through per-thread cascades; writes each result through ``write``.

    ``make_cascade`` is called once in each worker thread; the caller owns what it
    opens. ``recover(row)`` returns the result line for a row the ledger already holds
    for this batch, else None. ``external_id(key)`` names a row in the ledger.
    ``on_bad_row(message)`` hears about input lines that cannot run ("line 7: ...").

    ``spare_workers``: threads beyond ``concurrency``, for cascades built with
    ``call_slots=runner.call_slots``: ``concurrency`` of them call models at a time, and
    the others reserve a budget or record an answer meanwhile. A commit waits its turn
    for the ledger's write lock and for the GIL at each statement (~9 ms a row with 32
    threads, load ~20); a spare thread does that while the slot it left calls the next row.
    """

    def __init__(self, make_cascade: Callable[[], Cascade], write: Callable[[dict[str, Any]], None],
                 *, concurrency: int = DEFAULT_CONCURRENCY, default_user: str = "default",
                 external_id: Callable[[str], str] | None = None,
                 recover: Callable[[BatchRow], dict[str, Any] | None] | None = None,
                 on_progress: Callable[[BatchProgress], None] | None = None,
                 on_bad_row: Callable[[str], None] | None = None, spare_workers: int = 0) -> None:
        if concurrency < 1:
            raise InputError("--concurrency must be at least 1")
        self.make_cascade = make_cascade
        self.write = write
        self.concurrency = concurrency
        self.workers = concurrency + max(0, spare_workers)
        self.call_slots = threading.BoundedSemaphore(concurrency)
        self.default_user = default_user
        self.external_id = external_id
        self.recover = recover
        self.on_progress = on_progress
        self.on_bad_row = on_bad_row  # told about each input line that cannot be run
        self._tasks: queue.Queue[BatchRow | None] = queue.Queue()
        self._results: queue.Queue[_Outcome] = queue.Queue()
        self._in_flight = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        """Start no new rows; rows already running finish and are written."""
        self._stop.set()

    def run(self, rows: Iterable[BatchRow | BadRow], total: int, done: Container[str] = frozenset()
            ) -> BatchProgress:
        """Answer every row whose key is not in ``done``.

        On Ctrl-C (or a ledger that cannot be written) no new row starts, rows already
        running finish and are written, then the exception propagates. A second Ctrl-C
        while they finish abandons them: the worker threads are daemons, and a row that
        commits after that is recovered from the ledger by ``--resume``.
        """
        progress = BatchProgress(total)
        workers = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                   for i in range(self.workers)]
        for worker in workers:
            worker.start()
        seen: dict[str, tuple[int, bool]] = {}  # key -> (first line, whether its id was given)
        source = iter(rows)
        try:
            while True:
                self._fill(source, seen, done, progress)
                if self._in_flight == 0:
                    break
                self._collect(progress, block=True)
        except BaseException:
            progress.stopping = True
            self._stop.set()
            self._drain(progress)
            raise
        finally:
            for _ in workers:
                self._tasks.put(_STOP)
        for worker in workers:
            worker.join()
        return progress

    def _fill(self, source: Iterator[BatchRow | BadRow], seen: dict[str, tuple[int, bool]],
              done: Container[str], progress: BatchProgress) -> None:
        """Keep ``concurrency`` rows more than the workers in flight; settle rows that need no model."""
        while self._in_flight < self.workers + self.concurrency and not self._stop.is_set():
            item = next(source, None)
            if item is None:
                return
            key = item.key
            first = seen.setdefault(key, (item.line, _id_given(item)))
            if key in done:
                progress.skipped += 1
            elif first[0] != item.line:
                self._emit_error({"id": item.id, "line": item.line,
                                  "error": duplicate_message(item, *first)}, progress)
            elif isinstance(item, BadRow):
                self._emit_error(item.result(), progress)
            elif (recovered := self.recover(item) if self.recover else None) is not None:
                self.write(recovered)
                progress.recovered += 1
                self._report(progress)
            else:
                self._tasks.put(item)
                self._in_flight += 1

    def _collect(self, progress: BatchProgress, *, block: bool) -> None:
        """Write the results that are ready (waiting for one when ``block``)."""
        outcome = self._results.get() if block else self._results.get_nowait()
        while True:
            self._in_flight -= 1
            if outcome.failure is not None:
                if outcome.result is not None:  # answered, not recorded: the line is still written
                    self._emit(outcome, progress)
                raise outcome.failure
            self._emit(outcome, progress)
            try:
                outcome = self._results.get_nowait()
            except queue.Empty:
                return

    def _work(self) -> None:
        """A worker thread: rows in, outcomes out, until told to stop."""
        cascade: Cascade | None = None
        while (row := self._tasks.get()) is not _STOP:
            if cascade is None:
                try:
                    cascade = self.make_cascade()
                except BaseException as exc:
                    self._results.put(_Outcome(row, failure=exc))
                    continue
            self._results.put(self._answer(cascade, row))

    def _answer(self, cascade: Cascade, row: BatchRow) -> _Outcome:
        """One row through the cascade; every error but the ledger's becomes its result."""
        ext = self.external_id(row.key) if self.external_id else None
        try:
            result = cascade.run(row.query, row.user or self.default_user, domain=row.domain,
                                 external_id=ext)
        except LedgerError as exc:
            return _Outcome(row, failure=exc)  # the ledger cannot take more: the batch stops
        except NotRecordedError as exc:  # paid and journaled: write the answer, then stop
            result: Any = exc.result
            if result is None:
                return _Outcome(row, failure=exc)
            return _Outcome(row, {"id": row.id, **result.to_json()}, cost_nusd=result.cost_nusd, failure=exc)
        except CascadeError as exc:  # its calls may have been billed all the same (a draft, a timeout)
            return _Outcome(row, {"id": row.id, "error": redact(str(exc))}, error=True,
                            cost_nusd=exc.cost_nusd)
        except Exception as exc:  # a bug must not take the other rows down with it
            return _Outcome(row, {"id": row.id, "error": redact(f"unexpected {type(exc).__name__}: {exc}")},
                            error=True)
        return _Outcome(row, {"id": row.id, **result.to_json()}, cost_nusd=result.cost_nusd)

    def _emit(self, outcome: _Outcome, progress: BatchProgress) -> None:
        assert outcome.result is not None
        self.write(outcome.result)
        if outcome.error:
            progress.errors += 1
        else:
            progress.answered += 1
        progress.cost_nusd += outcome.cost_nusd
        self._report(progress)

    def _emit_error(self, result: dict[str, Any], progress: BatchProgress) -> None:
        """A row the input itself spoils (bad line, duplicate id): no model is asked."""
        if self.on_bad_row is not None:
            self.on_bad_row(result["error"])
        self.write(result)
        progress.errors += 1
        self._report(progress)

    def _report(self, progress: BatchProgress) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)

    def _drain(self, progress: BatchProgress) -> None:
        """After Ctrl-C or a failure: drop rows not started, write the rows that finish.
        Rows whose ledger write failed are not written: --resume asks them again."""
        while True:
            try:
                row = self._tasks.get_nowait()
            except queue.Empty:
                break
            if row is not _STOP:
                self._in_flight -= 1
        self._report(progress)
        while self._in_flight > 0:
            outcome = self._results.get()
            self._in_flight -= 1
            if outcome.failure is not None and outcome.result is None:
                continue
            try:
                self._emit(outcome, progress)
            except Exception:
                return  # the output is broken too; the ledger has the rows for --resume
