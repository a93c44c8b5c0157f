"""Secrets never reach a user's screen, a log, an output file or the ledger.

``redact`` is the one function every error path uses (the CLI's error renderer, --debug
tracebacks included, batch error lines, the error fields written to the ledger): it
replaces anything key-shaped (``sk-...``, ``Bearer ...``, ``api_key=...``) and the
values of the variables that hold keys (a model's ``api_key_env``, and any ``*_API_KEY``,
``*_TOKEN``, ``*_SECRET`` variable) with ``[redacted]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "[redacted]"
_SECRET_VARS = re.compile(r"(API_?KEY|_KEY|TOKEN|SECRET|PASSWORD|PASSWD)$", re.IGNORECASE)
_SHAPES = re.compile(
    r"""
      (?P<key>\bsk-[A-Za-z0-9_\-]{3,})                      # OpenAI-style keys (sk-, sk-proj-...)
    | (?P<bearer>(?i:bearer)(?:\s+|\\n|%20))[^\s'",]+       # Authorization: Bearer <key>
    | (?P<named>(?i:api[_-]?key)["']?\s*[=:]\s*["']?)[^\s'",&]+  # api_key=...
    """,
    re.VERBOSE,
)


def _keep_label(match: re.Match[str]) -> str:
    return (match.group("bearer") or match.group("named") or "") + REDACTED


_MIN_SECRET = 6  # shorter values ("1", "true") are not secrets and would garble the text


def secret_values(env_names: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of ``env_names`` and of every secret-looking variable, longest first.
    A value is also listed line by line (a key pasted with a line break leaks in parts)."""
    env = os.environ if environ is None else environ
    names = {n for n in env_names if n} | {n for n in env if _SECRET_VARS.search(n)}
    values: set[str] = set()
    for name in names:
        value = env.get(name, "")
        for part in [value, *value.splitlines(), *value.split()]:
            part = part.strip()
            if len(part) >= _MIN_SECRET:
                values.add(part)
                values.add(repr(part)[1:-1])  # as it appears inside a repr()'d bytes/str
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret value and key-shaped token replaced by [redacted].
    ``secrets`` defaults to ``secret_values()`` from the environment."""
    for value in secret_values() if secrets is None else secrets:
        if value:
            text = text.replace(value, REDACTED)
    return _SHAPES.sub(_keep_label, text)


def loggable(text: str) -> str:
    """Client-sent ``text`` (a request path) fit for a one-line log: key-shaped tokens
    redacted, control characters escaped. A path of ``/a%0a<fake line>`` once wrote a
    forged line into serve's access log, and ``/sk-cf-...`` a whole key (hostile-4).
    Only the key shapes, not the environment's values: this runs on every request."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return _SHAPES.sub(_keep_label, text)
