"""Every text option and argument of every command refuses undecodable bytes; every
number option says what it takes in one rule of our own: "--horizon must be a whole number
from 1 to 366, got 100000" (click's own read "Invalid value for '--horizon': 100000 is not
in the range 1<=x<=366.", and "'10.5' is not a valid int range." for `--max-tokens 10.5`),
NaN and infinity included.

Applied to the whole command tree once, so a command added later is covered too:
``cascade ask $'caf\\xe9'`` or ``--user $'b\\xe9b'`` fails at parsing, naming the
parameter, before a config is read, a budget reserved or a provider called. Paths are
not decoded (a file name need not be UTF-8 on Linux, and we never store one), but an
empty one, a NUL byte or a name longer than the file system takes is refused.

A float option takes "nan" and "inf" from click, and NaN passes every range check (each
comparison is false): `forecast --confidence nan` reached the forecaster (`unexpected
ValueError`), `anomalies --min-change nan` silently reported nothing.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable
from typing import Any

import typer

from cascadeflow_cli.errors import InputError
from cascadeflow_cli.files import path_problem
from cascadeflow_cli.text import text_problem


def _is_text(param: Any) -> bool:
    """A ``str`` parameter, or a tuple of them; paths are left alone. click names a str
    parameter's type "text" ("str" in typer's copy of click, which pyproject pins)."""
    kind = param.type
    parts = getattr(kind, "types", None)  # click.Tuple
    if parts is not None:
        return bool(parts) and all(getattr(t, "name", None) in ("text", "str") for t in parts)
    return getattr(kind, "name", None) in ("text", "str")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def _redecoded(value: Any) -> Any:
    """An argument Python decoded with an ASCII locale (LC_ALL=C with PYTHONUTF8=0) holds
    each non-ASCII byte as a lone surrogate: `budget set Zoë` read 'not valid UTF-8 text
    (byte 0xc3 ...)' for a name that is valid UTF-8. Such bytes are decoded as UTF-8 again
    (bytes that are not UTF-8 stay as they were, and are refused as before)."""
    if isinstance(value, list | tuple):
        return type(value)(_redecoded(v) for v in value)
    if not isinstance(value, str) or not any("\udc80" <= c <= "\udcff" for c in value):
        return value
    try:
        return os.fsencode(value).decode("utf-8")
    except UnicodeError:
        return value


def _checked(callback: Callable[..., Any] | None) -> Callable[..., Any]:
    def check(ctx: Any, param: Any, value: Any) -> Any:
        value = _redecoded(value)
        for text in _strings(value):
            problem = text_problem(text)
            if problem is not None:
                raise typer.BadParameter(f"not valid UTF-8 text ({problem})", ctx=ctx, param=param)
        return callback(ctx, param, value) if callback is not None else value

    check.__cascade_text_check__ = True  # type: ignore[attr-defined]
    return check


NUMBER_TYPES = ("int", "float", "int range", "float range", "integer", "integer range")


def _is_number(param: Any) -> bool:
    return getattr(param.type, "name", None) in NUMBER_TYPES


def _bound(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else f"{value:g}"


def number_rule(kind: Any, finite: bool = False) -> str:
    """What a number type takes, in words: "a whole number from 1 to 366"."""
    noun = "a whole number" if "int" in kind.name else "a finite number" if finite else "a number"
    lo, hi = getattr(kind, "min", None), getattr(kind, "max", None)
    lo_open, hi_open = getattr(kind, "min_open", False), getattr(kind, "max_open", False)
    if lo is not None and hi is not None and not lo_open and not hi_open:
        return f"{noun} from {_bound(lo)} to {_bound(hi)}"
    parts = [f"{'>' if lo_open else '>='} {_bound(lo)}"] if lo is not None else []
    parts += [f"{'<' if hi_open else '<='} {_bound(hi)}"] if hi is not None else []
    return " ".join([noun, " and ".join(parts)]) if parts else noun


def _shown(value: Any) -> str:
    """The value as typed: a number bare, anything else quoted."""
    try:
        float(value)
    except (TypeError, ValueError):
        return repr(value)
    return str(value).strip()


def _guard_number(kind: Any) -> None:
    """Wrap ``kind``'s convert (the instance: its range stays in the help text) so that a
    bad value, a value out of range, NaN or infinity fails with the one rule's line."""
    if getattr(kind.convert, "__cascade_number_check__", False):
        return
    convert = kind.convert

    def checked(value: Any, param: Any, ctx: Any) -> Any:
        try:
            # float("٣") and int("５") read other scripts' digits as 3 and 5: refused
            number = None if isinstance(value, str) and not value.isascii() else convert(value, param, ctx)
        except typer.BadParameter:
            number = None
        if isinstance(number, int | float) and (not isinstance(number, float) or math.isfinite(number)):
            return number
        name = next((o for o in getattr(param, "opts", ()) if o.startswith("--")), None) \
            if param is not None else None
        name = name or (param.human_readable_name if param is not None else "the value")
        # converted but not returned: NaN or infinity, which pass every range check
        raise InputError(f"{name} must be {number_rule(kind, finite=number is not None)}, "
                         f"got {_shown(value)}")

    checked.__cascade_number_check__ = True  # type: ignore[attr-defined]
    kind.convert = checked


def _guard_path(kind: Any) -> None:
    """Wrap a path type's convert: an empty path, a NUL byte or a name too long for the
    file system is refused naming the parameter (``files.path_problem``)."""
    if getattr(kind.convert, "__cascade_path_check__", False):
        return
    convert = kind.convert

    def checked(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str | os.PathLike):
            problem = path_problem(os.fspath(value) if not isinstance(value, str) else value)
            if problem is not None:
                raise typer.BadParameter(problem, ctx=ctx, param=param)
        return convert(value, param, ctx)

    checked.__cascade_path_check__ = True  # type: ignore[attr-defined]
    kind.convert = checked


def _escaped(text: str) -> str:
    """Control characters as escapes (a newline would break the one error line)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _name_extra_args(command: Any) -> None:
    """click's "Got unexpected extra argument(s) ()" for `cascade logs ''` named nothing:
    the extra arguments are listed again, each quoted as a shell would take it."""
    parse = command.parse_args
    if getattr(parse, "__cascade_extra_check__", False):
        return

    def parse_args(ctx: Any, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes the list it is given
        try:
            return parse(ctx, args)
        except typer.BadParameter:
            raise
        except Exception as exc:
            if "unexpected extra argument" not in getattr(exc, "message", ""):
                raise
            _, extra, _ = command.make_parser(ctx).parse_args(args=given)
            if not extra:
                raise
            words = " ".join(shlex.quote(_escaped(a)) for a in extra)
            raise type(exc)(f"Got unexpected extra argument{'s' if len(extra) > 1 else ''} "
                            f"{words}", ctx=ctx) from None

    parse_args.__cascade_extra_check__ = True  # type: ignore[attr-defined]
    command.parse_args = parse_args


def guard_text_params(command: Any) -> Any:
    """Check every text, number and path parameter under ``command`` (idempotent)."""
    for param in command.params:
        if getattr(param.type, "name", None) == "path":
            _guard_path(param.type)
        elif _is_number(param):
            _guard_number(param.type)
        elif _is_text(param) and not getattr(param.callback, "__cascade_text_check__", False):
            param.callback = _checked(param.callback)
    _name_extra_args(command)
    for sub in getattr(command, "commands", {}).values():
        guard_text_params(sub)
    return command
