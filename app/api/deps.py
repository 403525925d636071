"""Dependencies the routers take through ``Depends``, so tests can override them."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request

from app.services import Services


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def now() -> datetime:
    return datetime.now(UTC)
