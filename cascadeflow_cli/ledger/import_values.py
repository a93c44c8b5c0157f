"""The importer's values: each field of a row of history coerced to what the ledger
stores (exact nano-dollars, whole counts, flags, our timestamps), or one ImportRowError
naming the file, the line and the reason."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.dates import NonexistentLocalTime, parse_moment
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.money import MAX_AMOUNT_USD, MAX_COUNT, amount_problem, nanos_from_usd
from cascadeflow_cli.text import json_loads, text_problem, user_name

_OUR_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class ImportRowError(InputError):
    """One bad row: the message names the file, the line and the reason."""



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


def _user(value: Any, loc: str) -> str:
    """A user name, refused as `cascade ask --user` refuses it (blank, a spoofing character)."""
    text = _required_text(value, loc, "user")
    try:
        return user_name(text)
    except InputError as exc:
        raise ImportRowError(f"{loc}: {exc}") from None


def _choice(value: Any, loc: str, name: str, known: tuple[str, ...]) -> str | None:
    """One of the ``known`` words the ledger uses for ``name`` (role, status), or None
    when the row leaves it out; another word is refused, naming the ones it may be."""
    text = _code(value, loc, name)
    if text is not None and text not in known:
        raise ImportRowError(f"{loc}: unknown {name} {text!r} (one of {', '.join(known)})")
    return text


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
            # Decimal() would take "1_000", and "٣" or "５" (other scripts' digits) as 3
            # and 5; a spreadsheet writes neither
            if "_" in text or not text.isascii():
                raise InvalidOperation
            number = Decimal(text)
        except InvalidOperation:
            raise ImportRowError(f"{loc}: {name} is not a number: {value.strip()!r}") from None
    else:
        raise ImportRowError(f"{loc}: {name} must be a number")
    if not number.is_finite():
        raise ImportRowError(f"{loc}: {name} is not a finite number: {value!r}")
    return number


def _shown(number: Decimal) -> str:
    """A number for an error line: a 100,000-digit one made the line 100 KB long."""
    text = str(number)
    return text if len(text) <= 40 else f"{number:.6E}"


def _money(value: Any, loc: str, name: str, *, signed: bool = False) -> int | None:
    """USD to nano-dollars, exactly; "$1.50" is accepted, a negative cost is not."""
    number = _number(value, loc, name)
    if number is None:
        return None
    if number < 0 and not signed:
        raise ImportRowError(f"{loc}: {name} is negative: {_shown(number)}")
    # copy_abs, not abs(): abs() rounds to the context, where 1e99999999999 overflowed
    # (an 'unexpected Overflow') and 1e-99999999999 became 0 and was imported as $0
    magnitude = number.copy_abs()
    if magnitude > MAX_AMOUNT_USD:  # would overflow the ledger's int64 nano-dollars
        raise ImportRowError(f"{loc}: {name} {_shown(number)} is above the maximum of "
                             f"${MAX_AMOUNT_USD:,} per row")
    if (tiny := amount_problem(magnitude)) is not None:  # below 1 nano-USD: it was stored as $0
        raise ImportRowError(f"{loc}: {name} {value if len(str(value)) <= 40 else _shown(number)} {tiny}")
    return nanos_from_usd(number)


def _count(value: Any, loc: str, name: str, default: int = 0) -> int:
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    if type(value) is str and value.isascii() and value.isdigit() and len(value) < 19:
        return _capped(int(value), loc, name)
    number = _number(value, loc, name)
    if number is None:
        return default
    if number > MAX_COUNT:  # before int(): 1e999999 took 35 s to become a million digits
        raise ImportRowError(f"{loc}: {name} {_shown(number)} is above the maximum of {MAX_COUNT:,} per row")
    if number < 0 or number != number.to_integral_value():
        raise ImportRowError(f"{loc}: {name} must be a whole number >= 0, got {number}")
    return int(number)


def _capped(count: int, loc: str, name: str) -> int:
    if count > MAX_COUNT:  # SQLite stores int64, and sums of them must not overflow
        raise ImportRowError(f"{loc}: {name} {count} is above the maximum of {MAX_COUNT:,} per row")
    return count


def _fraction(value: Any, loc: str, name: str) -> float | None:
    """A score in [0, 1] (docs/ledger-columns.md): a quality_score of -5 or 7 was imported
    and then averaged into `quality` and `usage` figures; a domain_confidence likewise."""
    real = _real(value, loc, name)
    if real is not None and not 0 <= real <= 1:
        raise ImportRowError(f"{loc}: {name} must be between 0 and 1, got {value!r}")
    return real


def _duration(value: Any, loc: str, name: str) -> float | None:
    """A latency in ms, >= 0 (a negative one was stored and averaged into `usage`)."""
    real = _real(value, loc, name)
    if real is not None and real < 0:
        raise ImportRowError(f"{loc}: {name} must be >= 0, got {value!r}")
    return real


def _real(value: Any, loc: str, name: str) -> float | None:
    number = _number(value, loc, name)
    if number is None:
        return None
    real = float(number)
    if not math.isfinite(real):  # 1e400 stored as inf, and `logs --json` printed Infinity
        raise ImportRowError(f"{loc}: {name} {number} is too large for a number")
    return real


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
            items = json_loads(value)
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
        moment = parse_moment(text, tz)  # the one date parser (dates.py)
        in_range = 1970 <= moment.astimezone(UTC).year <= 9998
    except NonexistentLocalTime as exc:
        raise ImportRowError(f"{loc}: timestamp: {exc}") from None
    except ValueError:
        raise ImportRowError(f"{loc}: timestamp is not an ISO 8601 date or date-time: {text!r}") from None
    except OverflowError:  # beyond year 1 or 9999 once in UTC
        in_range = False
    if not in_range:
        raise ImportRowError(f"{loc}: timestamp is out of range: {text!r}")
    return format_ts(moment)

