"""Liveness apart from readiness: a live process may still be waiting for its dependencies."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.api.deps import services
from app.services import Services

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    checks = {"kafka": svc.producer.ping(), "store": svc.store.ping(), "database": _db_ok(svc)}
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def _db_ok(svc: Services) -> bool:
    try:
        with svc.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False
