"""API keys for `cascade serve`: who a request comes from.

A key is shown once, when it is created; the ledger keeps only its SHA-256 and a short
prefix to name it by (`cascade key list`, `cascade key revoke PREFIX`). A fast hash is
the right one here: keys are 190 random bits, not passwords, so there is nothing to
brute-force, and the lookup runs on every HTTP request. Keys start with ``sk-`` so the
one redaction pass (redact.py) already hides any that strays into an error line.

Functions here take any LedgerStore (each backend has the key queries: ledger/sqlite_keys.py,
ledger/postgres/keys.py); the tables are declared in ledger/schema.py with the others
(migrations 006 and 007). A key may have limits of its own: requests per minute (across
every server on the ledger: server/limits.py) and a budget, enforced by the gate with its
user's.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cascadeflow_cli.clock import format_ts
from cascadeflow_cli.errors import InputError
from cascadeflow_cli.ledger.budgets import BudgetConfig, budget_from_row, budget_row, ledger_user
from cascadeflow_cli.text import user_name
from cascadeflow_cli.windows import window

if TYPE_CHECKING:
    from datetime import datetime

    from cascadeflow_cli.ledger.enforcement import WindowState
    from cascadeflow_cli.ledger.storage import LedgerStore

KEY_PREFIX = "sk-cf-"
_ID_CHARS = 8  # after KEY_PREFIX: 62**8 prefixes, collisions are retried
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ApiKey:
    """A stored key: everything but the key itself. ``budget``: the key's own limits
    (checked besides its user's, in the same transaction), None when it has none."""

    prefix: str
    user: str
    name: str | None
    created_at: str
    revoked_at: str | None = None
    rpm: int | None = None
    budget: BudgetConfig | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        limits = self.budget.limits() if self.budget else {}
        return {
            "prefix": self.prefix,
            "user": self.user,
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "rpm": self.rpm,
            "budget": {w: str(v) for w, v in limits.items()} or None,
            "active": self.active,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", errors="replace")).hexdigest()


def _new_key() -> tuple[str, str]:
    ident = "".join(secrets.choice(_ALPHABET) for _ in range(_ID_CHARS))
    prefix = KEY_PREFIX + ident
    return prefix + secrets.token_urlsafe(24), prefix


def create_key(
    ledger: LedgerStore,
    user: str,
    name: str | None = None,
    rpm: int | None = None,
    budget: BudgetConfig | None = None,
) -> tuple[str, ApiKey]:
    """A new key for ``user``: returns the key (to show once) and what is stored of it."""
    user = ledger_user(ledger, user)  # blank, not UTF-8, a spoofing character; NFC or legacy
    # the key's name by the same rule: "José" composed and decomposed were two names (hostile-18)
    name = None if name is None else user_name(name, "the key name")
    if rpm is not None and rpm < 1:
        raise InputError(f"--rpm must be at least 1 (got {rpm})")
    budget = None if budget is None or budget.is_empty else budget
    now = format_ts(ledger.clock.now())
    while True:
        key, prefix = _new_key()
        row = {"prefix": prefix, "user": user, "name": name, "key_hash": hash_key(key), "created_at": now,
               "rpm": rpm, **budget_row(budget or BudgetConfig())}
        if ledger.insert_api_key(row):  # type: ignore[attr-defined]
            break
    return key, ApiKey(prefix, user, name, now, None, rpm, budget)


def _row(row: dict[str, Any]) -> ApiKey:
    budget = budget_from_row(row)
    return ApiKey(row["prefix"], row["user"], row["name"], row["created_at"], row["revoked_at"], row["rpm"],
                  None if budget.is_empty else budget)


def list_keys(ledger: LedgerStore, user: str | None = None) -> list[ApiKey]:
    return [_row(r) for r in ledger.api_keys(user)]  # type: ignore[attr-defined]


def revoke_key(ledger: LedgerStore, prefix: str) -> ApiKey:
    """Revoke the key named by ``prefix`` (InputError when there is none); revoking a
    revoked key is no error and keeps its first revocation time."""
    if prefix.startswith(KEY_PREFIX) and len(prefix) > len(KEY_PREFIX) + _ID_CHARS:
        # the whole key pasted (a leaked one, found in a log): "no key with prefix
        # '[redacted]'" was the answer; it is that key's prefix when it is an active key
        found = ledger.api_key_by_hash(hash_key(prefix))  # type: ignore[attr-defined]
        if found is None:
            raise InputError("that is no active key's whole key (see `cascade key list` for prefixes)")
        prefix = found["prefix"]
    row = ledger.revoke_api_key(prefix, format_ts(ledger.clock.now()))  # type: ignore[attr-defined]
    if row is None:
        raise InputError(f"no key with prefix {prefix!r} (see `cascade key list`)")
    return _row(row)


def authenticate(ledger: LedgerStore, key: str) -> ApiKey | None:
    """The active key ``key`` is, or None (unknown or revoked): a caller cannot tell which."""
    if not key.startswith(KEY_PREFIX):
        return None
    row = ledger.api_key_by_hash(hash_key(key))  # type: ignore[attr-defined]
    return _row(row) if row else None


def key_states(txn: Any, timezone: str, key: ApiKey, now: datetime) -> list[WindowState]:
    """Each limited window of ``key``'s own budget: the recorded cost of the requests
    made with it, and the reservations of those in flight (inside the gate's lock, which
    holds the key's user: every request of a key is its user's)."""
    from cascadeflow_cli.ledger.enforcement import WindowState

    if key.budget is None:
        return []
    reserved = txn.key_reserved_spend(key.prefix)
    scope = f"key {key.name}" if key.name else "this key"  # not the prefix: redaction hides sk-... text
    out = []
    for name, limit in key.budget.limits_nusd().items():
        win = window(name, now, timezone)
        spent = txn.key_window_spend(key.prefix, win)
        out.append(WindowState(name, limit, spent, reserved, win.start, win.end, scope=scope))
    return out
