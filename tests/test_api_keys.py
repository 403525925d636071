"""API keys: shown once, stored hashed, expiring and revocable; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app import cli
from app.auth.commands import make_demo_key
from app.auth.keys import AuthFailure, KeyNotFound, KeyStore, parse_token, valid_label
from app.auth.roles import Principal, Role
from app.auth.tables import api_keys
from app.main import create_app
from bench.isolation import isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from tests.auth_helpers import bearer

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


# ---- /v1/keys and the docs switch, over HTTP ------------------------------------------------------


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    )


def test_an_admin_makes_a_key_that_works_at_once_and_is_shown_once(client: TestClient) -> None:
    made = client.post("/v1/keys", json={"role": "viewer", "label": "wall screen", "expires_days": 30})
    assert made.status_code == 201
    body = made.json()
    assert (body["role"], body["label"], body["state"], body["revoked_at"]) == (
        "viewer",
        "wall screen",
        "active",
        None,
    )
    assert body["created_by"] == f"test admin ({client.headers['Authorization'].split('_')[1]})"
    expires = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["created_at"])
    assert expires == timedelta(days=30)
    assert client.get("/v1/warnings", headers=bearer(body["token"])).status_code == 200
    assert client.get("/v1/keys", headers=bearer(body["token"])).status_code == 403
    listed = client.get("/v1/keys").json()
    assert {k["id"] for k in listed} >= {body["id"]}
    shown = json.dumps(listed)
    assert body["token"].split("_", 2)[2] not in shown and "secret" not in shown and "hash" not in shown
    assert all("token" not in k for k in listed)


def test_revoking_over_http_stops_the_key_and_is_idempotent(client: TestClient) -> None:
    body = client.post("/v1/keys", json={"role": "operator", "label": "night shift"}).json()
    first = client.delete(f"/v1/keys/{body['id']}")
    assert first.status_code == 200 and first.json()["state"] == "revoked"
    assert client.get("/v1/warnings", headers=bearer(body["token"])).status_code == 401
    again = client.delete(f"/v1/keys/{body['id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == first.json()["revoked_at"]
    assert client.delete("/v1/keys/0123456789ab").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"role": "root", "label": "x"},
        {"role": "viewer", "label": ""},
        {"role": "viewer", "label": "a\u0000b"},
        {"role": "viewer", "label": "x" * 101},
        {"role": "viewer", "label": "x", "expires_days": 0},
        {"role": "viewer", "label": "x", "secret": "mine"},
        {"role": "viewer"},
    ],
)
def test_a_bad_key_request_is_422(client: TestClient, body: dict[str, object]) -> None:
    assert client.post("/v1/keys", json=body).status_code == 422


def test_the_docs_and_the_openapi_document_can_be_closed(settings: Settings) -> None:
    with TestClient(create_app(settings)) as open_app:
        assert open_app.get("/openapi.json").status_code == 200
        spec = open_app.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["apiKey"]["description"],
    }
    assert spec["paths"]["/v1/warnings"]["get"]["security"] == [{"apiKey": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    closed = settings.model_copy(update={"api_docs": False})
    with TestClient(create_app(closed)) as closed_app:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert closed_app.get(path).status_code == 404
        assert closed_app.get("/healthz").status_code == 200


# ---- the citywarn keys commands -------------------------------------------------------------------


@pytest.fixture
def state_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    monkeypatch.setenv("CITYWARN_DATABASE_URL", url)
    return url


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    cli.main(list(argv))
    return capsys.readouterr().out.splitlines()


def test_keys_create_prints_the_key_alone_on_the_last_line(
    state_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_cli(capsys, "keys", "create", "--role", "operator", "--label", "duty desk", "--expires", "7")
    token = out[-1]
    assert parse_token(token) is not None and token == token.strip()
    text = "\n".join(out[:-1])
    assert "operator" in text and "duty desk" in text and parse_token(token)[0] in text  # type: ignore[index]
    engine = sa.create_engine(state_db)
    try:
        found = KeyStore(engine).authenticate(token, now=datetime.now(UTC))
        assert isinstance(found, Principal) and (found.label, found.role) == ("duty desk", Role.OPERATOR)
        [record] = KeyStore(engine).list()
        assert record.expires_at is not None
        assert record.expires_at - record.created_at == timedelta(days=7)
    finally:
        engine.dispose()


def test_keys_list_and_revoke(state_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    token = run_cli(capsys, "keys", "create", "--role", "viewer", "--label", "wall screen")[-1]
    key_id = token.split("_")[1]
    listed = "\n".join(run_cli(capsys, "keys", "list"))
    assert key_id in listed and "wall screen" in listed and "active" in listed
    assert token.split("_", 2)[2] not in listed
    assert key_id in "\n".join(run_cli(capsys, "keys", "revoke", key_id))
    assert "revoked" in "\n".join(line for line in run_cli(capsys, "keys", "list") if key_id in line)


def test_revoking_an_unknown_key_fails_with_a_clear_message(
    state_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["keys", "revoke", "0123456789ab"])
    assert exited.value.code not in (0, None)
    assert "no key 0123456789ab" in str(exited.value.code)


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "create", "--role", "root", "--label", "x"],
        ["keys", "create", "--role", "viewer", "--label", "bad\tlabel"],
        ["keys", "create", "--role", "viewer", "--label", "x", "--expires", "0"],
    ],
)
def test_keys_create_refuses_bad_arguments(state_db: str, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code not in (0, None)


def test_the_demo_key_is_an_admin_key_in_a_private_file_and_replaces_the_last_one(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/state.sqlite3", demo_key_file=tmp_path / "demo.key"
    )
    first, path = make_demo_key(settings)
    second, _ = make_demo_key(settings)
    assert path.read_text() == second + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    engine = sa.create_engine(settings.database_url)
    try:
        keys, now = KeyStore(engine), datetime.now(UTC)
        assert keys.authenticate(first, now=now) is AuthFailure.REVOKED
        found = keys.authenticate(second, now=now)
        assert isinstance(found, Principal) and (found.role, found.label) == (Role.ADMIN, "demo admin")
    finally:
        engine.dispose()
