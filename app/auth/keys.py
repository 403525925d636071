"""API keys in the state database: made, listed, revoked, and checked on every request.

A key reads ``cwk_<id>_<secret>``: the id finds the row without a scan, and
only a SHA-256 of the secret is stored, so a copy of the database opens
nothing. The secret has 256 bits of entropy, so a fast hash is enough (no
password stretching), and it is compared with ``hmac.compare_digest`` so the
time taken says nothing about how much of it matched. An unknown id is
compared against a dummy hash for the same reason, and a key's expiry or
revocation is told only to a caller who showed the right secret.

``AuthCache`` keeps what a token was found to be for a few seconds, so a
busy console does not cost a database query and a hash per request. A key
revoked through this process's ``KeyStore`` is forgotten at once; one revoked
by another process (``citywarn keys revoke``, another API process), or
re-admitted by an authentication that read the key just before this process
revoked it, is refused at most ``ttl_s`` later. Expiry is checked on every
hit, so it is exact.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa

from app.auth.roles import Principal, Role
from app.auth.tables import api_keys
from config.timeutil import as_utc

PREFIX = "cwk"
LABEL_MAX = 100
_TOKEN = re.compile(r"cwk_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})")
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


class AuthFailure(StrEnum):
    """Why a request's key was refused; expired and revoked only once the secret was right."""

    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"


KeyState = Literal["active", "expired", "revoked"]


class KeyNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as anyone may see it: everything but its secret and the secret's hash."""

    id: str
    label: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> KeyState:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and as_utc(now) >= self.expires_at:
            return "expired"
        return "active"


def valid_label(label: str) -> bool:
    """1..100 printable characters (no control characters, tabs or line breaks), not all blank."""
    return 0 < len(label) <= LABEL_MAX and label.isprintable() and not label.isspace()


def parse_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    match = _TOKEN.fullmatch(token)
    return (match["id"], match["secret"]) if match else None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Admitted:
    principal: Principal
    expires_at: datetime | None
    until: float  # on the cache's monotonic clock


class AuthCache:
    """Principals of recently admitted tokens, for at most ``ttl_s`` each.

    Keyed by a SHA-256 of the whole token, so neither the secret nor anything
    that opens a key stays in memory, and a wrong secret never hits. Only
    admissions are kept: a refusal is always asked of the database. One cache
    per engine (``for_engine``), so every ``KeyStore`` on it forgets a key it revokes.
    """

    MAX_ENTRIES = 10_000  # past this, the whole cache is dropped: cheaper than an LRU, and rare

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[bytes, _Admitted] = {}
        self._lock = threading.Lock()

    @staticmethod
    def for_engine(engine: sa.Engine, ttl_s: float) -> AuthCache:
        """The engine's cache (made on first use); ``ttl_s`` follows the latest caller's setting."""
        with _CACHES_LOCK:
            cache = _CACHES.get(engine)
            if cache is None:
                cache = _CACHES[engine] = AuthCache(ttl_s)
        cache.ttl_s = ttl_s
        return cache

    def lookup(self, token: str, *, now: datetime) -> Principal | None:
        """The token's principal if it was admitted less than ``ttl_s`` ago and has not expired since."""
        found = self._entries.get(_token_key(token))
        if found is None or self._clock() >= found.until:
            return None
        if found.expires_at is not None and as_utc(now) >= found.expires_at:
            return None
        return found.principal

    def admit(self, token: str, principal: Principal, expires_at: datetime | None) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[_token_key(token)] = _Admitted(principal, expires_at, self._clock() + self.ttl_s)

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v.principal.key_id != key_id}


_CACHES: weakref.WeakKeyDictionary[sa.Engine, AuthCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _token_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class KeyStore:
    """``cache``: where an admitted token is remembered (``AuthCache``); None asks the database every time."""

    def __init__(self, engine: sa.Engine, cache: AuthCache | None = None) -> None:
        self.engine = engine
        self.cache = cache

    def create(
        self, role: Role, label: str, *, expires: timedelta | None, created_by: str, now: datetime
    ) -> tuple[KeyRecord, str]:
        """A new key and its token: the token is shown to the caller here and never again."""
        if not valid_label(label):
            raise ValueError(f"label must be 1..{LABEL_MAX} printable characters, got {label[:120]!r}")
        if expires is not None and expires <= timedelta(0):
            raise ValueError("expires must be a positive duration")
        now = as_utc(now)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        record = KeyRecord(
            id=key_id,
            label=label,
            role=Role(role),
            created_at=now,
            created_by=created_by[:160],
            expires_at=now + expires if expires is not None else None,
            revoked_at=None,
        )
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    id=record.id,
                    label=record.label,
                    role=record.role.value,
                    secret_hash=_hash(secret),
                    created_at=record.created_at,
                    created_by=record.created_by,
                    expires_at=record.expires_at,
                )
            )
        return record, f"{PREFIX}_{key_id}_{secret}"

    def list(self) -> list[KeyRecord]:
        """Every key, revoked and expired ones too (the audit trail names them), oldest first."""
        c = api_keys.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(c.created_at, c.id)).all()
        return [_record(r) for r in rows]

    def get(self, key_id: str) -> KeyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        return None if row is None else _record(row)

    def revoke(self, key_id: str, *, at: datetime) -> KeyRecord:
        """Revoke a key from ``at`` on. Idempotent: a key revoked before keeps its first revocation time."""
        c = api_keys.c
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.update().where(c.id == key_id, c.revoked_at.is_(None)).values(revoked_at=as_utc(at))
            )
            row = conn.execute(sa.select(api_keys).where(c.id == key_id)).first()
        if (cache := self.cache or _CACHES.get(self.engine)) is not None:
            cache.forget(key_id)
        if row is None:
            raise KeyNotFound(key_id)
        return _record(row)

    def authenticate(self, token: str | None, *, now: datetime) -> Principal | AuthFailure:
        """The principal a presented token stands for, or why it is refused."""
        if not token:
            return AuthFailure.MISSING
        parsed = parse_token(token)
        if parsed is None:
            return AuthFailure.MALFORMED
        key_id, secret = parsed
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
        stored = row.secret_hash if row is not None else _DUMMY_HASH
        if not hmac.compare_digest(_hash(secret), stored) or row is None:
            return AuthFailure.UNKNOWN
        record = _record(row)
        state = record.state(now)
        if state != "active":
            return AuthFailure(state)
        principal = Principal(key_id=record.id, label=record.label, role=record.role)
        if self.cache is not None:
            self.cache.admit(token, principal, record.expires_at)
        return principal


def _record(row: Any) -> KeyRecord:
    def utc(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return KeyRecord(
        id=row.id,
        label=row.label,
        role=Role(row.role),
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        expires_at=utc(row.expires_at),
        revoked_at=utc(row.revoked_at),
    )
