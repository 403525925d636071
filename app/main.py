"""The FastAPI application: routers, limits, and a lifespan that owns start-up and shut-down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import (
    areas,
    cap,
    drills,
    health,
    keys,
    me,
    readings,
    recommendations,
    reports,
    sensor_health,
    sensors,
    silences,
    stream,
    subscriptions,
    timeline,
    warnings,
)
from app.api.openapi import install_openapi
from app.api.problems import install_problem_handlers
from app.api.webhook_docs import install_webhook_docs
from app.auth.audit import AuditLog
from app.console import router as console_router
from app.http_metrics import HttpMetrics
from app.kept_pages import KeptPages
from app.limits import BodySizeLimit, InputLimits
from app.metrics import install_metrics
from app.rate_limits import build_rate_limiter
from app.services import Services, build_services
from app.workers import BackgroundThreads, build_drill_runner, start_ingest
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
    """``run_ingest`` also runs the consumers in this process (``citywarn run``).

    The workers are ``app.state.workers``: one that dies is named by /readyz,
    and ``citywarn run`` stops serving and exits non-zero.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = build_services(settings)
        ensure_topics(settings)
        app.state.services = svc
        threads = BackgroundThreads()
        app.state.workers = threads
        app.state.consumers = {}
        if run_ingest:
            app.state.consumers = start_ingest(threads, svc)
        for name, make in (extra_workers or {}).items():
            threads.start(name, make(svc))
        app.state.drills = build_drill_runner(svc)  # drills an earlier run left running: interrupted
        try:
            yield
        finally:
            app.state.drills.close()
            threads.stop()
            svc.close()

    app = FastAPI(
        title="citywarn",
        version="0.1.0",
        summary="Real-time risk sensing and early warning for a city EOC",
        lifespan=lifespan,
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
        openapi_url="/openapi.json" if settings.api_docs else None,
    )
    install_problem_handlers(app)
    install_openapi(app)
    install_webhook_docs(app)  # the OpenAPI document's webhooks: what integrators' endpoints receive
    app.add_middleware(
        InputLimits,
        max_json_depth=settings.max_json_depth,
        max_json_number_chars=settings.max_json_number_chars,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)  # counts before InputLimits reads
    # Inside the metrics, outside the limits: a kept page of GET /v1/warnings is counted, and answered
    # without the layers below, which have nothing to check in a GET it may answer (app.kept_pages).
    app.add_middleware(KeptPages)
    app.add_middleware(HttpMetrics)  # outside the limits: their refusals are counted and timed too
    app.add_middleware(AuditLog)  # outermost: it logs requests the inner layers refuse, too
    first = (health, readings, reports, warnings, timeline, recommendations, cap, sensor_health, sensors)
    for module in (*first, areas, keys, me, stream):
        app.include_router(module.router)
    app.include_router(silences.router)
    app.include_router(drills.router)
    app.include_router(subscriptions.router)
    app.include_router(console_router)  # GET /console: the operator console's page and assets
    install_metrics(app)  # GET /metrics, open like /healthz
    app.state.rate_limiter = build_rate_limiter(settings)  # app.auth.deps.require counts; None: off
    return app
