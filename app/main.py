"""The FastAPI application: routers, limits, and a lifespan that owns start-up and shut-down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import health, readings, sensors, warnings
from app.limits import BodySizeLimit
from app.services import Services, build_services
from app.workers import BackgroundThreads, build_ingest_worker
from config.settings import Settings
from ingest.kafka import ensure_topics

log = logging.getLogger(__name__)

ExtraWorker = Callable[[Services], Callable[..., object]]


def create_app(
    settings: Settings,
    *,
    run_ingest: bool = False,
    extra_workers: dict[str, ExtraWorker] | None = None,
) -> FastAPI:
    """``run_ingest`` also runs the consumer in this process (``citywarn run``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = build_services(settings)
        ensure_topics(settings)
        app.state.services = svc
        threads = BackgroundThreads()
        if run_ingest:
            worker = build_ingest_worker(svc)
            app.state.ingest = worker
            threads.start("ingest", worker.run)
        for name, make in (extra_workers or {}).items():
            threads.start(name, make(svc))
        try:
            yield
        finally:
            threads.stop()
            svc.close()

    app = FastAPI(
        title="citywarn",
        version="0.1.0",
        summary="Real-time risk sensing and early warning for a city EOC",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for module in (health, readings, warnings, sensors):
        app.include_router(module.router)
    return app
