"""`cascade batch`: a JSONL file of queries through the cascade, a JSONL file of results."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from cascadeflow_cli.cli.context import app_context, default_user, is_terminal
from cascadeflow_cli.errors import InputError, LedgerError, NotRecordedError
from cascadeflow_cli.files import is_special, same_file

if TYPE_CHECKING:
    from cascadeflow_cli.engine.batch import BatchProgress

PLAIN_PROGRESS_EVERY_S = 5.0
BAD_ROWS_SHOWN = 10  # input problems named on stderr (all of them are in the output)
ROWS_FAILED_EXIT = 5  # CLI.md: the batch finished, but some rows ended in an error


def batch(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSONL rows: {\"id\", \"query\", \"user\"?, \"domain\"?}.")],
    user: Annotated[str | None, typer.Option("--user", "-u", help="User for rows without one "
                                             "(default: $CASCADE_USER or 'default').")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=256,
                                             help="Model calls in flight at once.")] = 8,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write results to OUT.jsonl "
                                                "(else stdout).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Keep OUT and answer only the rows it "
                                         "lacks (and none the ledger already holds).")] = False,
) -> None:
    """Answer every row of FILE; one result line per row (the `ask --json` object plus
    "id", or {"id", "error"}), written as each row finishes, in finishing order."""
    from cascadeflow_cli.usecases.batch import count_rows, plan_batch, run_batch
    from cascadeflow_cli.usecases.requests import wait_for_checks

    if not file.is_file():
        raise InputError(f"{file}: no such file" if not file.exists() else f"{file}: not a file")
    if resume and output is None:
        raise InputError("--resume needs --output (the file whose rows are kept)")
    from cascadeflow_cli.text import user_name

    # one line before anything runs: `--user ""` (an empty $VAR) charged every row to
    # 'default', past the user's own budget; `--user "  "` made every row an error
    who = default_user() if user is None else user_name(user)
    out_path = output.resolve() if output else None
    # the input by another spelling, a symlink or a hard link (a resolved-path check missed
    # the last, and opening it emptied the input)
    if out_path is not None and same_file(out_path, file):
        raise InputError(f"{output}: the output cannot be the input file")
    if out_path is not None and out_path.is_dir():  # --resume read it: 'unexpected IsADirectoryError'
        raise InputError(f"{output}: is a directory, not an output file")
    if resume and output is not None and is_special(output):  # a FIFO's reader waited for ever
        raise InputError(f"{output}: --resume reads the output back: it must be a regular file")
    from cascadeflow_cli.cli.telemetry_hook import telemetry

    context = app_context(ctx)
    context.refuse_ledger_as_output(out_path)
    on_record = telemetry(context)  # before the ledger: a bad endpoint stops us with nothing written
    ledger = context.ledger()
    # the path as given, not resolved: /dev/stdout on a pipe resolves to 'pipe:[...]', no file
    out = _Output(output, resume)  # locked before the plan reads it: one run writes OUT at a time
    try:
        plan = plan_batch(ledger, file, out_path, resume)
    except BaseException:
        out.close()
        raise
    reporter = _Reporter(count_rows(file), file)
    try:
        with reporter:
            progress = run_batch(context.config, ledger, file, plan, write=out.write, total=reporter.total,
                                 concurrency=concurrency, default_user=who,
                                 on_retry=reporter.retry, on_record=on_record,
                                 on_progress=reporter.update, on_bad_row=reporter.bad_row)
    except KeyboardInterrupt:
        _interrupted(out, reporter)
    except LedgerError as exc:
        hint = "run again with --resume to finish" if out_path else "then run the rest"
        raise LedgerError(f"{exc}; stopped after {reporter.last_done:,} rows — fix it, then "
                          f"{hint}") from None
    except NotRecordedError as exc:  # the answered row is written; the journal has it (exit 4)
        hint = "; then run again with --resume to finish" if out_path else ""
        raise NotRecordedError(f"{exc}; stopped after {reporter.last_done:,} rows{hint}", exc.result,
                               journaled=exc.journaled) from None
    finally:
        out.close()
    for line in wait_for_checks():  # shadow verifications of accepted drafts (issue 9) still in flight
        sys.stderr.write(f"warning: {line}\n")
    reporter.summary(progress)
    if progress.errors:  # CLI.md: finished, but some rows ended in an error (all are written)
        raise typer.Exit(ROWS_FAILED_EXIT)


class _Output:
    """Where result lines go: OUT (appended to on --resume) or stdout. One line per
    result, flushed at once: after kill -9 the file holds every line written (a torn last
    line at worst, which --resume cuts off)."""

    def __init__(self, path: Path | None, resume: bool) -> None:
        self._file: TextIO | None = None
        if path is not None:
            try:
                # opened without truncating, and emptied only once it is ours (not --resume)
                self._file = path.open("a", encoding="utf-8")
            except OSError as exc:
                raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
            _lock(self._file, path)
            if not resume and not is_special(path):
                self._file.truncate(0)

    @property
    def to_file(self) -> bool:
        return self._file is not None

    def write(self, result: dict[str, Any]) -> None:
        # stdout is looked up each time: the progress bar redirects it above itself
        out = self._file or sys.stdout
        try:
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            out.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:  # a full disk: the row is in the ledger, --resume takes it from there
            where = self._file.name if self._file else "the output"
            hint = "free space, then run again with --resume" if self._file else "run again with --output"
            raise InputError(f"{where}: cannot write the results: {exc.strerror or exc}; the rows answered "
                             f"so far are in the ledger: {hint}") from None

    def close(self) -> None:
        if self._file is not None:
            # every line was flushed by write(), which said so if it failed: what a failed
            # write left in the buffer must not fail the close again over that message
            with contextlib.suppress(OSError):
                self._file.close()
        else:
            sys.stdout.flush()


def _lock(fh: TextIO, path: Path) -> None:
    """Hold OUT for this run: two `batch --resume` runs of one output both asked the rows
    it lacked, paid for them twice and wrote them twice (the second then stopped, exit 4,
    on the ledger's unique batch row). The lock goes when the process ends, kill -9 too."""
    import errno
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return  # a file system without locks: run as before
        fh.close()
        raise InputError(f"{path}: another `cascade batch` is writing it; let it finish (then --resume "
                         "if it stopped), or write to another file") from None


def _interrupted(out: _Output, reporter: _Reporter) -> None:
    """Ctrl-C: every finished row is written; say how to finish, exit 130."""
    out.close()
    reporter.close()
    hint = "; run again with --resume to finish" if out.to_file else ""
    sys.stderr.write(f"error: interrupted: {reporter.last_done:,} of {reporter.total:,} rows have "
                     f"results{hint}\n")
    sys.stderr.flush()
    os._exit(130)  # rows abandoned by a second Ctrl-C may still be running: do not wait


class _Reporter:
    """A rich progress bar on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, total: int, file: Path) -> None:
        self.total = total
        self.file = file
        self.last_done = 0
        self.bad_rows = 0
        self.terminal = is_terminal()
        self._bar: Any = None
        self._task: Any = None
        self._next_line = time.monotonic() + PLAIN_PROGRESS_EVERY_S

    def __enter__(self) -> _Reporter:
        if self.terminal:
            self._bar = _progress_bar()
            self._bar.start()
            self._task = self._bar.add_task(self.file.name, total=self.total, rate=0.0, spend="$0",
                                            errors=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def update(self, p: BatchProgress) -> None:
        from cascadeflow_cli.money import format_usd

        self.last_done = p.done
        if self._bar is not None:
            self._bar.update(self._task, completed=p.done, rate=p.rate, spend=format_usd(p.cost_nusd),
                             errors=p.errors)
        elif time.monotonic() >= self._next_line:
            self._next_line = time.monotonic() + PLAIN_PROGRESS_EVERY_S
            sys.stderr.write(progress_line(p) + "\n")
            sys.stderr.flush()

    def retry(self, notice: Any) -> None:
        """A provider retry in some row: one line, above the bar on a terminal."""
        self._line(f"warning: {notice.describe()}")

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def bad_row(self, message: str) -> None:
        """An input line that cannot run: named on stderr (the first few), and in OUT."""
        self.bad_rows += 1
        if self.bad_rows <= BAD_ROWS_SHOWN:
            text = f"warning: {self.file}: {message}"
        elif self.bad_rows == BAD_ROWS_SHOWN + 1:
            text = f"warning: {self.file}: more bad lines; every one has an error line in the output"
        else:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            sys.stderr.write(text + "\n")

    def summary(self, p: BatchProgress) -> None:
        from cascadeflow_cli.money import format_usd
        from cascadeflow_cli.words import count_of

        parts = [count_of(p.done, "row"), f"{p.answered:,} answered"]
        if p.skipped:
            parts.append(f"{p.skipped:,} already done")
        if p.recovered:
            parts.append(f"{p.recovered:,} recovered from the ledger")
        parts += [count_of(p.errors, "error"), format_usd(p.cost_nusd),
                  f"{p.elapsed:.1f}s ({p.rate:.1f} rows/s)"]
        sys.stderr.write("batch: " + " · ".join(parts) + "\n")


def progress_line(p: BatchProgress) -> str:
    """``batch: 1,200/10,000 (12%) · 64.1 rows/s · ETA 2m17s · spent $0.0123 · 3 errors``."""
    from cascadeflow_cli.money import format_usd

    pct = 100 * p.done / p.total if p.total else 100.0
    eta = p.eta
    return (f"batch: {p.done:,}/{p.total:,} ({pct:.0f}%) · {p.rate:.1f} rows/s · "
            f"ETA {_duration(eta) if eta is not None else '?'} · spent {format_usd(p.cost_nusd)} · "
            f"{p.errors:,} error{'s' if p.errors != 1 else ''}")


def _duration(eta: float) -> str:
    seconds = round(eta)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _progress_bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from cascadeflow_cli.cli.context import stderr_console

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} rows/s"), TextColumn("ETA"), TimeRemainingColumn(),
        TextColumn("spent {task.fields[spend]}"), TextColumn("{task.fields[errors]} errors"),
        console=stderr_console(), transient=False, refresh_per_second=5)
