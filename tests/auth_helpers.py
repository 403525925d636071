"""API keys for tests that call the app: one per role, made straight in the app's state database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.keys import KeyStore
from app.auth.roles import Role


def new_key(
    app: FastAPI,
    role: Role = Role.ADMIN,
    label: str | None = None,
    *,
    expires: timedelta | None = None,
    now: datetime | None = None,
) -> str:
    """A key's token for a started app (its lifespan has built ``app.state.services``)."""
    store = KeyStore(app.state.services.engine)
    _, token = store.create(
        role, label or f"test {role.value}", expires=expires, created_by="tests", now=now or datetime.now(UTC)
    )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def admin_client(app: FastAPI) -> Iterator[TestClient]:
    """The app started by its lifespan, every request sent with an admin key unless told otherwise."""
    with TestClient(app) as client:
        client.headers.update(bearer(new_key(app, Role.ADMIN, "test admin")))
        yield client


def cli_key(role: str, label: str, *, cwd: Path, env: Mapping[str, str]) -> str:
    """A key made as an operator makes one beside a running service: `citywarn keys create ... | tail -1`."""
    citywarn = str(Path(sys.executable).parent / "citywarn")
    out = subprocess.run(
        [citywarn, "keys", "create", "--role", role, "--label", label],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.splitlines()[-1]
