"""Liveness apart from readiness: a live process may still be waiting for its dependencies."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from app.api.deps import Now, services
from app.api.problems import problem_response
from app.services import Services
from app.workers import BackgroundThreads
from ingest.consumer import IngestWorker

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


BROKER_NOT_DURABLE = (
    "the embedded broker keeps messages in memory only: an accepted message is queued, not stored, "
    "until its consumer has written it, and a crash loses what is in flight"
)


@router.get("/readyz")
def readyz(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    at: Now,
) -> JSONResponse:
    """Ready only if every dependency answers and no background worker has died.

    Not ready is a 503 problem document whose extension members are the same fields.

    ``workers`` names each worker's state ("dead: <error>" for one that
    stopped on an error); ``consumers`` gives per consumer the messages not
    yet committed (``lag``) and the age of its last stored batch.
    """
    checks = {"kafka": svc.producer.ping(), "store": svc.store.ping(), "database": _db_ok(svc)}
    threads: BackgroundThreads | None = getattr(request.app.state, "workers", None)
    workers = threads.states() if threads is not None else {}
    consumers: dict[str, IngestWorker[Any]] = getattr(request.app.state, "consumers", {})
    ready = all(checks.values()) and not any(state.startswith("dead") for state in workers.values())
    body = {
        "ready": ready,
        "checks": checks,
        "workers": workers,
        "consumers": {name: asdict(worker.health(at)) for name, worker in consumers.items()},
        "durability": {
            "broker_durable": svc.settings.broker_durable,
            **({} if svc.settings.broker_durable else {"warning": BROKER_NOT_DURABLE}),
        },
    }
    if ready:
        return JSONResponse(body)
    down = [name for name, ok in checks.items() if not ok]
    dead = [name for name, state in workers.items() if state.startswith("dead")]
    reasons = [*(f"{name} does not answer" for name in down), *(f"worker {name} died" for name in dead)]
    detail = "not ready: " + ", ".join(reasons)
    return problem_response(503, detail, instance=request.url.path, extensions=body)


def _db_ok(svc: Services) -> bool:
    try:
        with svc.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False
