"""Getting a paid request into the ledger, or into the side journal when the ledger
cannot take it (ledger/journal.py). Nothing paid for is lost: a commit that fails after
the provider answered raises NotRecordedError carrying the answer, exit 4."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.engine import attempts
from cascadeflow_cli.errors import InputError, LedgerError, NotRecordedError
from cascadeflow_cli.faults import checkpoint
from cascadeflow_cli.ledger import journal
from cascadeflow_cli.ledger.liveness import forget_own
from cascadeflow_cli.money import MAX_COUNT

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.journal import Entry
    from cascadeflow_cli.ledger.labels import ShadowOutcome
    from cascadeflow_cli.ledger.records import RequestRecord
    from cascadeflow_cli.ledger.storage import LedgerStore as Ledger

UNFINISHED = "the process ended before the request was recorded"


def check_text(**texts: str | None) -> None:
    """Text the ledger (UTF-8) and the provider (JSON) can take. A lone surrogate from
    undecodable bytes (argv or stdin in a non-UTF-8 locale) cannot be, and used to be
    found only after the provider was paid."""
    for name, text in texts.items():
        try:
            (text or "").encode("utf-8")
        except UnicodeEncodeError:
            what = {"user": "the user name", "system": "the system prompt"}.get(name, f"the {name}")
            raise InputError(
                f"{what} is not valid UTF-8 text (check the terminal's or the file's encoding)"
            ) from None


def check_max_tokens(max_tokens: object) -> None:
    """A token limit the ledger can hold (each call keeps it, int64) and a worst case can
    be priced from: `ask --max-tokens 99999999999999999999999` on a model whose output
    limit no price map knows was sent, paid, and then could not be recorded (an
    OverflowError, the answer set aside in .journal-refused/)."""
    if type(max_tokens) is not int or not 1 <= max_tokens <= MAX_COUNT:
        shown = f"{max_tokens:,}" if type(max_tokens) is int else repr(max_tokens)
        raise InputError(f"max_tokens must be a whole number from 1 to {MAX_COUNT:,}, got {shown}")


def record_request(ledger: Ledger, req: Any, result: object, record: RequestRecord, *, ahead: bool) -> None:
    """``req`` (the cascade's request in flight) into the ledger, journaled ahead of the
    commit when money was spent (so it is kept if the process dies before the commit, as
    the final record: a replay, or `batch --resume` which reads the ledger, has the
    answer); or ``ahead`` into the journal only (a draft paid for, then escalated; a call
    about to be sent, in flight)."""
    reservation = req.decision.reservation_id if req.decision else None
    paid = attempts.paid(req.attempts)  # a call answered, or one in flight (it may be billed)
    if paid or req.journaled:  # (unpaid: it replaces the line of a call in flight that then failed)
        req.journaled = write_ahead(ledger, record, reservation) or req.journaled
    if ahead:
        return
    checkpoint("after-call")
    commit(ledger, record, reservation, result, paid=paid, journaled=req.journaled)


def write_in_flight(ledger: Ledger, req: Any, call: dict[str, Any], head: dict[str, Any]) -> bool:
    """Journal ``call`` as in flight (journal.write_in_flight): False where it could not
    be (no ``flock``: the caller journals the whole record; a full disk: the commit will
    fail too, and say so)."""
    try:
        written = journal.write_in_flight(
            ledger.path, head, call, req.decision.reservation_id if req.decision else None)
    except OSError:
        return False
    req.journaled = req.journaled or written
    return written


def write_ahead(ledger: Ledger, record: Entry, reservation_id: str | None) -> bool:
    """Journal the request in flight; False when the journal cannot be written (a full
    disk: the commit will fail too, and say so)."""
    try:
        journal.write_ahead(ledger.path, record, reservation_id)
    except OSError:
        return False
    return True


def commit(
    ledger: Ledger,
    record: RequestRecord,
    reservation_id: str | None,
    result: object,
    *,
    paid: bool,
    journaled: bool,
) -> None:
    """Record ``record`` and settle its reservation in one transaction. If that fails
    after money was spent (``paid``), the final record goes to the journal, fsynced, and
    NotRecordedError carries ``result``; an entry written ahead is deleted on success."""
    try:
        ledger.record(record, reservation_id=reservation_id)
    except LedgerError as exc:
        if not paid:
            if journaled:  # its calls failed (unpaid): the line of one in flight is void
                journal.discard(ledger.path, record.id)
            raise
        raise _not_recorded(ledger, record, reservation_id, result, exc) from None
    except BaseException:  # Ctrl-C or SIGTERM inside the commit: the journal keeps it
        if paid:
            with contextlib.suppress(OSError):
                journal.write(ledger.path, record, reservation_id, durable=True)
        raise
    finally:  # settled, or left to the journal's recovery: no longer timed by this process
        forget_own(reservation_id)
    if journaled:
        journal.discard(ledger.path, record.id)


def record_shadow(
    ledger: Ledger, outcome: ShadowOutcome, reservation_id: str | None, *, journaled: bool = False
) -> None:
    """A shadow verification's outcome into the ledger. Its call, when it answered, was
    paid for after its request was recorded: it is journaled ahead (a kill -9 while the
    commit waits for the lock keeps it) and, if the commit fails, kept in the journal
    (fsynced) for the next command, NotRecordedError saying so; so is a call that was sent
    and got no answer (charged its estimate). ``journaled``: the call
    was journaled ahead as in flight (shadow.py), and this outcome replaces that line."""
    paid = outcome.call is not None and (outcome.call.status == "ok" or outcome.call.cost_nusd > 0)
    if paid or journaled:
        journaled = write_ahead(ledger, outcome, reservation_id) or journaled
    try:
        ledger.record_shadow(outcome, reservation_id)
    except LedgerError as exc:
        if not paid:
            if journaled:  # it failed, unpaid: nothing of it is to be kept
                journal.discard(ledger.path, journal.entry_id(outcome))
            raise
        raise _not_recorded(ledger, outcome, reservation_id, None, exc,
                            what="the shadow verification was answered") from None
    except BaseException:
        if paid:
            with contextlib.suppress(OSError):
                journal.write(ledger.path, outcome, reservation_id, durable=True)
        raise
    if journaled:
        journal.discard(ledger.path, journal.entry_id(outcome))


def _not_recorded(
    ledger: Ledger, record: Entry, reservation_id: str | None, result: object, exc: LedgerError,
    *, what: str = "answered",  # what was paid for
) -> NotRecordedError:
    try:
        where = journal.write(ledger.path, record, reservation_id, durable=True)
    except OSError as err:
        return NotRecordedError(
            f"{what}, but not recorded: {exc}; the journal could not be written either "
            f"({err.strerror or err}): this request's cost is recorded nowhere",
            result,
            journaled=False,
        )
    return NotRecordedError(
        f"{what}, but not recorded: {exc}; the request waits in {where.parent} and the next "
        "command that can write the ledger records it",
        result,
    )
