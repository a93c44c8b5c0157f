"""Every text option and argument of every command refuses undecodable bytes; every
number option refuses NaN and infinity.

Applied to the whole command tree once, so a command added later is covered too:
``cascade ask $'caf\\xe9'`` or ``--user $'b\\xe9b'`` fails at parsing, naming the
parameter, before a config is read, a budget reserved or a provider called. Paths are
left alone: a file name need not be UTF-8 on Linux, and we never store one.

A float option takes "nan" and "inf" from click, and NaN passes every range check (each
comparison is false): `forecast --confidence nan` reached the forecaster (`unexpected
ValueError`), `anomalies --min-change nan` silently reported nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import typer

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


def _is_float(param: Any) -> bool:
    return getattr(param.type, "name", None) in ("float", "float range")


def _finite(callback: Callable[..., Any] | None) -> Callable[..., Any]:
    def check(ctx: Any, param: Any, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number", ctx=ctx, param=param)
        return callback(ctx, param, value) if callback is not None else value

    check.__cascade_text_check__ = True  # type: ignore[attr-defined]
    return check


def guard_text_params(command: Any) -> Any:
    """Check every text and float parameter under ``command`` (idempotent)."""
    for param in command.params:
        guard = _checked if _is_text(param) else _finite if _is_float(param) else None
        if guard is None:
            continue
        if not getattr(param.callback, "__cascade_text_check__", False):
            param.callback = guard(param.callback)
    for sub in getattr(command, "commands", {}).values():
        guard_text_params(sub)
    return command
