"""API keys for `cascade serve`: who a request comes from.

A key is shown once, when it is created; the ledger keeps only its SHA-256 and a short
prefix to name it by (`cascade key list`, `cascade key revoke PREFIX`). A fast hash is
the right one here: keys are 190 random bits, not passwords, so there is nothing to
brute-force, and the lookup runs on every HTTP request. Keys start with ``sk-`` so the
one redaction pass (redact.py) already hides any that strays into an error line.

Functions here take a :class:`~cascadeflow_cli.ledger.db.Ledger`; the table is declared
in ledger/schema.py with the others (migration 006).
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.errors import InputError

if TYPE_CHECKING:
    from cascadeflow_cli.ledger.db import Ledger

KEY_PREFIX = "sk-cf-"
_ID_CHARS = 8  # after KEY_PREFIX: 62**8 prefixes, collisions are retried
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ApiKey:
    """A stored key: everything but the key itself."""

    prefix: str
    user: str
    name: str | None
    created_at: str
    revoked_at: str | None = None
    rpm: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "user": self.user,
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "rpm": self.rpm,
            "active": self.active,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", errors="replace")).hexdigest()


def _new_key() -> tuple[str, str]:
    ident = "".join(secrets.choice(_ALPHABET) for _ in range(_ID_CHARS))
    prefix = KEY_PREFIX + ident
    return prefix + secrets.token_urlsafe(24), prefix


def create_key(
    ledger: Ledger, user: str, name: str | None = None, rpm: int | None = None
) -> tuple[str, ApiKey]:
    """A new key for ``user``: returns the key (to show once) and what is stored of it."""
    if not user.strip():
        raise InputError("the user name is empty")
    if rpm is not None and rpm < 1:
        raise InputError(f"--rpm must be at least 1 (got {rpm})")
    now = format_ts(ledger.clock.now())
    with ledger.write() as db:
        while True:
            key, prefix = _new_key()
            if not db.execute("select 1 from api_keys where prefix = ?", [prefix]).fetchone():
                break
        db.execute(
            "insert into api_keys (prefix, user, name, key_hash, created_at, rpm) values (?, ?, ?, ?, ?, ?)",
            [prefix, user, name, hash_key(key), now, rpm],
        )
    return key, ApiKey(prefix, user, name, now, None, rpm)


def _row(row: dict[str, Any]) -> ApiKey:
    return ApiKey(row["prefix"], row["user"], row["name"], row["created_at"], row["revoked_at"], row["rpm"])


def list_keys(ledger: Ledger, user: str | None = None) -> list[ApiKey]:
    sql = "select * from api_keys" + (" where user = ?" if user else "") + " order by created_at, prefix"
    return [_row(r) for r in ledger.db.query(sql, [user] if user else [])]


def revoke_key(ledger: Ledger, prefix: str) -> ApiKey:
    """Revoke the key named by ``prefix`` (InputError when there is none); revoking a
    revoked key is no error and keeps its first revocation time."""
    now = format_ts(ledger.clock.now())
    with ledger.write() as db:
        db.execute("update api_keys set revoked_at = coalesce(revoked_at, ?) where prefix = ?", [now, prefix])
        rows = list(db.query("select * from api_keys where prefix = ?", [prefix]))
    if not rows:
        raise InputError(f"no key with prefix {prefix!r} (see `cascade key list`)")
    return _row(rows[0])


def authenticate(ledger: Ledger, key: str) -> ApiKey | None:
    """The active key ``key`` is, or None (unknown or revoked): a caller cannot tell which."""
    if not key.startswith(KEY_PREFIX):
        return None
    rows = list(
        ledger.db.query("select * from api_keys where key_hash = ? and revoked_at is null", [hash_key(key)])
    )
    return _row(rows[0]) if rows else None
