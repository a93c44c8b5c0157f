"""Calendar days and user-given dates: the one home for parsing `--since/--until/--as-of`
style values, for "today" (always through the injectable clock, in the ledger's time
zone) and for a zero-filled daily range. A base module: no config, no storage."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, TypeVar

from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    from cascadeflow_cli.clock import Clock

D = TypeVar("D", date, datetime)
V = TypeVar("V")

FIRST_YEAR, LAST_YEAR = 1970, 9998  # the ledger's range (import refuses others): a day after still exists


def check_date_range(moment: D, text: str) -> D:
    """``moment`` if its year is one the ledger can hold, else an InputError."""
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise InputError(f"date out of range: {text!r} (use a year from {FIRST_YEAR} to {LAST_YEAR})")
    return moment


class NonexistentLocalTime(ValueError):
    """A naive date-time that the zone's clocks skip (the hour a DST change jumps over)."""


def empty_range(since: str, until: str) -> InputError:
    """The one message for a --since/--until pair that selects nothing (usage, export,
    logs, anomalies: their wordings differed)."""
    return InputError(f"--since {since} is not before --until {until}: nothing lies between them")


def parse_moment(text: str, timezone: str) -> datetime:
    """A date (local midnight in ``timezone``) or an ISO 8601 date-time (naive means
    ``timezone``; a trailing Z means UTC), as an aware datetime. Raises ValueError for
    text that is neither, OverflowError when the moment leaves the calendar in UTC.

    Daylight saving time: a naive date-time the clocks skip (``2026-03-29T02:30`` in
    Europe/Berlin) is no moment at all: NonexistentLocalTime. One the clocks show twice
    (``2026-10-25T02:30`` there) is its first occurrence, the earlier instant (still on
    summer time); give an offset (``+01:00``) for the other. A date's midnight that is
    skipped (America/Santiago in September) is the instant the day starts."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(timezone)
    if len(text) == 10:
        return datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), tz)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is not None:
        return moment
    local = moment.replace(tzinfo=tz, fold=0)  # fold 0: the first of a repeated time
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != moment:
        raise NonexistentLocalTime(
            f"no such local time: {text!r} in {timezone} (the clocks skip it for daylight"
            " saving time; give a UTC offset or another time)"
        )
    return local


def parse_since(text: str, timezone: str) -> datetime:
    """A ``--since/--until`` value: a date (local midnight in the ledger's time zone) or
    an ISO 8601 date-time (naive means that time zone). Returned in UTC."""
    try:
        return check_date_range(parse_moment(text, timezone).astimezone(UTC), text)
    except NonexistentLocalTime as exc:
        raise InputError(str(exc)) from None
    except ValueError:
        raise InputError(f"not a date: {text!r} (use YYYY-MM-DD or an ISO 8601 date-time)") from None
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise InputError(f"date out of range: {text!r}") from None


def parse_until(text: str, timezone: str) -> datetime:
    """``--until``: a date includes its whole day (up to the next local midnight); a
    date-time is an exclusive bound. Returned in UTC."""
    moment = parse_since(text, timezone)
    if len(text) == 10:  # the next local midnight, whatever the day's length
        following = local_date(moment, timezone) + timedelta(days=1)
        # not range-checked again: --until 9998-12-31 read "date out of range: '9999-01-01'"
        return parse_moment(following.isoformat(), timezone).astimezone(UTC)
    return moment


def parse_day(text: str, flag: str) -> date:
    """A plain ``YYYY-MM-DD`` (``--as-of``), or an InputError naming ``flag``."""
    try:  # strptime, as parse_moment: fromisoformat would also take " 2026-01-01" or "20260101"
        if len(text) != 10:
            raise ValueError(text)
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise InputError(f"{flag}: not a date: {text!r} (use YYYY-MM-DD)") from None
    return check_date_range(day, text)


def parse_local_day(text: str, timezone: str) -> date:
    """The local calendar day (in ``timezone``) of a ``--since/--until`` value."""
    return local_date(parse_since(text, timezone), timezone)


def local_date(moment: datetime, timezone: str) -> date:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(timezone)).date()


def today(clock: Clock, timezone: str) -> date:
    """Today in ``timezone``, by ``clock`` (a pinned clock pins every "today")."""
    return local_date(clock.now(), timezone)


def zero_filled(days: Mapping[date, V], zero: V, first: date | None = None,
                last: date | None = None) -> list[tuple[date, V]]:
    """Every day from ``first`` (else the earliest in ``days``) to ``last`` (else the
    latest), with ``zero`` where ``days`` has nothing; empty when there is no range."""
    if not days and (first is None or last is None):
        return []
    start = first if first is not None else min(days)
    end = last if last is not None else max(days)
    return [(start + timedelta(days=i), days.get(start + timedelta(days=i), zero))
            for i in range((end - start).days + 1)]
