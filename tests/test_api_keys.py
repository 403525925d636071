"""API keys: shown once, stored hashed, expiring and revocable; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.auth.keys import AuthFailure, KeyNotFound, KeyStore, parse_token, valid_label
from app.auth.roles import Principal, Role
from app.auth.tables import api_keys

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def keys(engine: sa.Engine) -> KeyStore:
    return KeyStore(engine)


def test_a_new_key_authenticates_as_its_label_and_role(keys: KeyStore) -> None:
    record, token = keys.create(Role.OPERATOR, "duty officer wang", expires=None, created_by="test", now=NOW)
    assert token.startswith(f"cwk_{record.id}_") and len(record.id) == 12
    assert keys.authenticate(token, now=NOW) == Principal(record.id, "duty officer wang", Role.OPERATOR)


def test_only_a_hash_of_the_secret_is_stored(keys: KeyStore, engine: sa.Engine) -> None:
    _, token = keys.create(Role.ADMIN, "ops", expires=None, created_by="test", now=NOW)
    secret = parse_token(token)[1]  # type: ignore[index]
    with engine.connect() as conn:
        row = conn.execute(sa.select(api_keys)).one()
    assert secret not in "".join(str(v) for v in row)
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, AuthFailure.MISSING),
        ("", AuthFailure.MISSING),
        ("hello", AuthFailure.MALFORMED),
        ("cwk_zzzzzzzzzzzz_" + "a" * 43, AuthFailure.MALFORMED),
        ("cwk_0123456789ab_short", AuthFailure.MALFORMED),
        ("cwk_0123456789ab_" + "a" * 43, AuthFailure.UNKNOWN),
    ],
)
def test_absent_malformed_and_unknown_keys_are_refused_with_the_reason(
    keys: KeyStore, token: str | None, reason: AuthFailure
) -> None:
    keys.create(Role.ADMIN, "someone", expires=None, created_by="test", now=NOW)
    assert keys.authenticate(token, now=NOW) is reason


def test_the_right_id_with_a_wrong_secret_is_unknown(keys: KeyStore) -> None:
    record, token = keys.create(Role.ADMIN, "ops", expires=None, created_by="test", now=NOW)
    secret = parse_token(token)[1]  # type: ignore[index]
    wrong = f"cwk_{record.id}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    assert keys.authenticate(wrong, now=NOW) is AuthFailure.UNKNOWN


def test_a_key_expires_at_its_expiry(keys: KeyStore) -> None:
    record, token = keys.create(Role.VIEWER, "short", expires=timedelta(days=1), created_by="t", now=NOW)
    assert record.expires_at == NOW + timedelta(days=1)
    assert isinstance(keys.authenticate(token, now=NOW + timedelta(hours=23)), Principal)
    assert keys.authenticate(token, now=NOW + timedelta(days=1)) is AuthFailure.EXPIRED


def test_a_revoked_key_is_refused_and_revoking_again_keeps_the_first_time(keys: KeyStore) -> None:
    record, token = keys.create(Role.VIEWER, "leaked", expires=None, created_by="t", now=NOW)
    revoked = keys.revoke(record.id, at=NOW + timedelta(minutes=1))
    assert revoked.revoked_at == NOW + timedelta(minutes=1)
    assert keys.authenticate(token, now=NOW + timedelta(minutes=2)) is AuthFailure.REVOKED
    again = keys.revoke(record.id, at=NOW + timedelta(hours=1))
    assert again.revoked_at == NOW + timedelta(minutes=1)
    with pytest.raises(KeyNotFound):
        keys.revoke("0123456789ab", at=NOW)


def test_list_shows_every_key_oldest_first_and_never_a_secret(keys: KeyStore) -> None:
    first, _ = keys.create(Role.ADMIN, "a", expires=None, created_by="t", now=NOW)
    second, _ = keys.create(
        Role.INGEST, "b", expires=timedelta(days=2), created_by="t", now=NOW + timedelta(1)
    )
    listed = keys.list()
    assert [k.id for k in listed] == [first.id, second.id]
    assert listed[1].role is Role.INGEST and listed[1].expires_at == NOW + timedelta(days=3)
    assert not any(hasattr(k, "secret_hash") for k in listed)


@pytest.mark.parametrize("label", ["", " ", "x" * 101, "tab\there", "nul\x00", "bell\x07", "line\nbreak"])
def test_labels_are_one_to_a_hundred_printable_characters(keys: KeyStore, label: str) -> None:
    assert not valid_label(label)
    with pytest.raises(ValueError, match="label"):
        keys.create(Role.ADMIN, label, expires=None, created_by="t", now=NOW)


@pytest.mark.parametrize("label", ["a", "x" * 100, "江滩街道 值班员", "ops team (night)"])
def test_printable_labels_are_taken(label: str) -> None:
    assert valid_label(label)
