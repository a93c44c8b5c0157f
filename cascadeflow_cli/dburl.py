"""Where the ledger lives: a SQLite file or a PostgreSQL database, told apart by the text.

``postgresql://...`` (or ``postgres://...``) is a PostgreSQL connection URI as libpq reads
it; ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` (SQLAlchemy's convention) and
any other text are a SQLite file path. A password is never ours to keep: libpq finds it in
``$PGPASSWORD`` or ``~/.pgpass``, or the config names a variable (``password_env``) read
at connect time. A password written into the URL itself still works, but every message
shows the URL with it masked (:func:`mask_url`), and the ledger stores no URL at all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cascadeflow_cli.errors import ConfigError
from cascadeflow_cli.files import expanded

POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


@dataclass(frozen=True)
class LedgerLocation:
    """A SQLite file (``path``) or a PostgreSQL database (``url``, password not resolved)."""

    path: Path | None = None
    url: str | None = None
    password_env: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def display(self) -> str:
        """For messages: the path, or the URL with any password masked."""
        return mask_url(self.url) if self.url is not None else str(self.path)

    def __str__(self) -> str:
        return self.display()

    def password(self, env: Mapping[str, str] = os.environ) -> str | None:
        """The password from ``password_env`` (None: leave it to libpq's own sources)."""
        if self.password_env is None:
            return None
        value = env.get(self.password_env)
        if not value:
            raise ConfigError(f"ledger.password_env: ${self.password_env} is not set "
                              f"(it holds the password for {self.display()})")
        return value


def is_postgres_url(text: str) -> bool:
    match = _SCHEME.match(text.strip())
    return bool(match) and match.group(1).lower() in POSTGRES_SCHEMES


def parse_location(text: str | Path, *, base: Path | None = None,
                   password_env: str | None = None) -> LedgerLocation:
    """``--db``, ``$CASCADE_DB``, ``[ledger] url`` or ``path`` as a location. A relative
    path is taken relative to ``base`` (the config file's directory) when given."""
    if isinstance(text, Path):
        return LedgerLocation(path=_relative(expanded(text), base))
    raw = text.strip()
    if is_postgres_url(raw):
        check_postgres_url(raw)
        return LedgerLocation(url=raw, password_env=password_env)
    match = _SCHEME.match(raw)
    if match:
        if match.group(1).lower() != "sqlite":
            raise ConfigError(f"{mask_url(raw)}: unknown ledger URL scheme {match.group(1)!r} "
                              "(use a file path, sqlite:///PATH or postgresql://...)")
        rest = raw[len(match.group(0)):]
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(f"{raw}: a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
        raw = rest[1:]  # sqlite:///x.db -> x.db, sqlite:////tmp/x.db -> /tmp/x.db
    return LedgerLocation(path=_relative(expanded(Path(raw)), base))


def check_postgres_url(url: str) -> None:
    """Refuse what libpq would misread, before any connection (the message masks secrets)."""
    # a password holding '?', '#' or '/' as typed ends urlsplit's netloc inside it: the
    # "port" it then complains about is the password's head, so no value is quoted back
    hint = " (percent-encode any : / ? # @ in the password)" if url_secrets(url) else ""
    authority = url.split("://", 1)[-1].split("/", 1)[0]
    if authority.count("@") > 1:  # libpq ends the password at the first: its tail became the host
        raise ConfigError(f"{mask_url(url)}: not a PostgreSQL URL: an '@' in the user or password "
                          "must be percent-encoded (%40)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a non-numeric port
    except ValueError as exc:
        reason = re.sub(r"\s*(?:as\s*)?'[^']*'", "", str(exc))
        raise ConfigError(f"{mask_url(url)}: not a PostgreSQL URL: {reason}{hint}") from None
    if parts.fragment:
        raise ConfigError(f"{mask_url(url)}: a PostgreSQL URL has no #fragment{hint}")


def mask_url(url: str) -> str:
    """``url`` with the password of its user-info (and any ``password=`` query value)
    replaced by ``***``."""
    masked = url
    head, user, password, tail = _userinfo(url)
    if password is not None:
        masked = f"{head}{user}:***@{tail}"
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", masked, flags=re.IGNORECASE)


def _userinfo(url: str) -> tuple[str, str, str | None, str]:
    """``url`` as (scheme://, user, password or None, what follows the '@'). The password
    runs to the last '@': one typed with '/', '?', '#' or '@' in it (libpq wants them
    percent-encoded) was shown whole by a pattern stopping at the first of them. Masking
    too much (an '@' in a query value) is the safe side."""
    match = _SCHEME.match(url)
    if not match:
        return "", "", None, url
    rest = url[match.end():]
    at = rest.rfind("@")
    user, colon, password = rest[:at].partition(":") if at >= 0 else ("", "", "")
    # "host:5432/db?application_name=a@b": a port then a path, as libpq reads it, not a password
    port_then_path = "/" in password and password.split("/", 1)[0].isdigit()
    if not colon or any(c in user for c in "/?#@") or port_then_path:
        return match.group(0), "", None, rest
    return match.group(0), user, password, rest[at + 1:]


def url_secrets(url: str) -> list[str]:
    """The password(s) written into ``url`` (user-info and ``password=``), as typed and
    percent-decoded: libpq quotes a bad percent-encoded token back in its error."""
    found = [_userinfo(url)[2] or ""]
    found += re.findall(r"[?&]password=([^&#]*)", url, flags=re.IGNORECASE)
    values = {v for raw in found if raw for v in (raw, unquote(raw))}
    return sorted(values, key=len, reverse=True)


def _relative(path: Path, base: Path | None) -> Path:
    return base / path if base is not None and not path.is_absolute() else path
