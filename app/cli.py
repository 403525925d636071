"""``citywarn``: run everything in one process, or the API and the consumer apart."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import FrameType

import uvicorn
from fastapi import FastAPI

from alerts import db
from alerts.delivery import DeliveryWorker, default_worker_id
from alerts.migrations import head_revision
from app.auth import commands as key_commands
from app.collector import settle_for_batches
from app.json_logs import configure_logging
from app.main import ExtraWorker, create_app
from app.metrics import AppStateCollector, count_delivery, serve_headless
from app.preflight import checked_settings
from app.services import Services, build_services, migrate_state_database
from app.workers import BackgroundThreads, delivery_worker, start_ingest, train_now
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics
from ingest.keys import sensor_areas
from ingest.replay import Recorded, replay

log = logging.getLogger("citywarn")

# The embedded broker joins groups faster with short poll intervals (see Settings).
EMBEDDED_KAFKA = {"kafka_max_poll_interval_ms": 10_000, "kafka_session_timeout_ms": 6_000}


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising SIGINT/SIGTERM after its shutdown, and stopping when a worker dies.

    uvicorn re-raises the captured signal once it has stopped, which would end
    the process before ``run`` stops the embedded broker and returns 0. A dead
    background worker (``app.state.workers``) ends serving: an API whose ingest
    is dead would accept readings that nothing stores.
    """

    def __init__(self, app: FastAPI, host: str, port: int, *, settings: Settings) -> None:
        # JSON logs: uvicorn's loggers get no handlers of their own and reach the root's JSON handler.
        log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
        config = uvicorn.Config(
            app, host=host, port=port, log_level="info", log_config=log_config, access_log=settings.access_log
        )
        super().__init__(config)
        self.citywarn_app = app

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def on_tick(self, counter: int) -> bool:
        if self.worker_failures() and not self.should_exit:
            log.error("stopping: background worker(s) died: %s", self.worker_failures())
            self.should_exit = True
        return await super().on_tick(counter)

    def worker_failures(self) -> dict[str, str]:
        threads: BackgroundThreads | None = getattr(self.citywarn_app.state, "workers", None)
        return dict(threads.failures) if threads is not None else {}


def _serve(app: FastAPI, host: str, port: int, *, settings: Settings) -> None:
    """Serve until a signal; exit non-zero if the app never started or a worker died."""
    server = _Server(app, host, port, settings=settings)
    server.run()
    if not server.started:
        log.error("the service did not start (see the errors above)")
        raise SystemExit(3)
    if server.worker_failures():
        raise SystemExit(f"citywarn stopped because background worker(s) died: {server.worker_failures()}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="citywarn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="everything in one process on the embedded defaults")
    _http_args(run_p)
    run_p.add_argument("--demo", action="store_true", help="replay the bundled demo city's day")
    run_p.add_argument(
        "--demo-speed",
        type=float,
        default=3000.0,
        help="simulated seconds per second (default 3000: the day in 29 s)",
    )
    serve_p = sub.add_parser("serve", help="the API only, against configured servers")
    _http_args(serve_p)
    _metrics_args(sub.add_parser("ingest", help="the consumers only, against configured servers"))
    _metrics_args(
        sub.add_parser(
            "deliver", help="the webhook delivery worker only, against the configured state database"
        )
    )
    sub.add_parser("train", help="fit the per-kind models now from the store's history")
    sub.add_parser("check", help="validate the settings and the city's files, then exit (2 on errors)")
    sub.add_parser("migrate", help="bring the state database to the latest schema, then exit")
    key_commands.add_parser(sub)
    args = parser.parse_args(argv)

    # Every command checks the configuration first: nothing has started if this exits.
    settings, checked = checked_settings()
    if args.command == "check":
        for warning in checked.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(checked.summary())
        return
    configure_logging(settings.log_format)
    for warning in checked.warnings:
        log.warning("%s", warning)
    if args.command == "migrate":
        applied = migrate_state_database(settings)
        print(f"state database at {head_revision()}; applied: {', '.join(applied) or 'nothing'}")
    elif args.command == "keys":
        key_commands.run(args, settings)
    elif args.command == "run":
        run(settings, host=args.host, port=args.port, demo=args.demo, demo_speed=args.demo_speed)
    elif args.command == "serve":
        _serve(create_app(settings), args.host, args.port, settings=settings)
    elif args.command == "train":
        settle_for_batches()  # each kind's history is read as one batch of points
        svc = build_services(settings)
        try:
            for model in train_now(svc, now=datetime.now(UTC)).values():
                print(json.dumps(model.describe()))
        finally:
            svc.close()
    elif args.command == "deliver":
        deliver(settings, metrics=_metrics_at(args))
    else:
        ingest(settings, metrics=_metrics_at(args))


def _metrics_at(args: argparse.Namespace) -> tuple[str, int] | None:
    return None if args.metrics_port is None else (args.metrics_host, args.metrics_port)


def _metrics_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics on this port (none by default: this process has no API)",
    )
    p.add_argument("--metrics-host", default="127.0.0.1", help="the address /metrics listens on")


def _http_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)


def run(settings: Settings, *, host: str, port: int, demo: bool, demo_speed: float) -> None:
    """Start Tansu unless a broker is configured, then the API, the consumer and the demo."""
    broker = None if settings.kafka_bootstrap else EmbeddedBroker().start()
    try:
        if broker is not None:
            log.info("embedded Tansu broker on %s (pid %s)", broker.bootstrap, broker.pid)
            # Tansu keeps its log in memory: what it accepted is queued, not yet durable.
            settings = settings.model_copy(
                update={"kafka_bootstrap": broker.bootstrap, "broker_durable": False, **EMBEDDED_KAFKA}
            )
        extra: dict[str, ExtraWorker] = {"webhook-delivery": delivery_worker}
        if demo:
            extra["demo"] = _demo_worker(demo_speed)
            token, path = key_commands.make_demo_key(settings)
            print(f"demo admin key, also in {path} (mode 0600):\n{token}", flush=True)
            print(
                f'try: curl -H "Authorization: Bearer $(cat {path})" http://{host}:{port}/v1/warnings',
                flush=True,
            )
        app = create_app(settings, run_ingest=True, extra_workers=extra)
        _serve(app, host, port, settings=settings)
    finally:
        if broker is not None:
            broker.stop()
            log.info("embedded broker stopped")


def _demo_worker(speed: float) -> Callable[[Services], Callable[[threading.Event], object]]:
    def make(svc: Services) -> Callable[[threading.Event], object]:
        from demo.city import demo_readings, demo_reports
        from demo.live import stream_live

        def work(stop: threading.Event) -> None:
            end = datetime.now(UTC)
            topics = svc.settings
            areas = sensor_areas(svc.catalog)
            events = [
                Recorded.reading(topics.topic_readings, m, areas)
                for m in demo_readings(end=end, catalog=svc.catalog)
            ]
            events += [
                Recorded.report(topics.topic_reports, m) for m in demo_reports(end=end, areas=svc.areas)
            ]
            log.info("demo: replaying the demo city's day, %d messages", len(events))
            replay(svc.producer, events, speed=speed, stop=stop)
            # Then keep every sensor reporting: a demo city that falls quiet would be all sensor faults.
            live_topic = topics.topic_readings
            stream_live(svc.producer, topic=live_topic, catalog=svc.catalog, day_end=end, stop=stop)

        return work

    return make


def ingest(settings: Settings, *, metrics: tuple[str, int] | None = None) -> None:
    """Run the consumers until SIGINT or SIGTERM, or until one dies; batches in hand finish.

    A worker that dies stops the others and the process exits non-zero, so a
    supervisor sees it instead of a process that runs on without ingest.
    """
    svc = build_services(settings)
    ensure_topics(settings)
    threads = BackgroundThreads(on_failure=lambda _name, _exc: threads.stop_event.set())

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch", signum)
        threads.stop_event.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        consumers = start_ingest(threads, svc)
        if metrics is not None:
            serve_headless(metrics[1], metrics[0], AppStateCollector(lambda: consumers, lambda: svc.engine))
        while not threads.stop_event.wait(1.0):
            pass
    finally:
        threads.stop(60)
        svc.close()
    if threads.failures:
        raise SystemExit(f"citywarn ingest stopped because worker(s) died: {threads.failures}")


def deliver(settings: Settings, *, metrics: tuple[str, int] | None = None) -> None:
    """Deliver webhooks until SIGINT or SIGTERM; attempts in flight finish and are recorded first.

    Run as many as you like: their claims keep them from sending one attempt twice.
    """
    engine = db.connect(settings.database_url)
    worker = DeliveryWorker(
        engine,
        settings,
        worker_id=default_worker_id(),
        clock=lambda: datetime.now(UTC),
        on_outcome=count_delivery,
    )
    if metrics is not None:
        serve_headless(metrics[1], metrics[0], AppStateCollector(dict, lambda: engine))
    threads = BackgroundThreads(on_failure=lambda _name, _exc: threads.stop_event.set())

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the attempts in flight", signum)
        threads.stop_event.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info("delivering webhooks as %s", worker.worker_id)
    try:
        threads.start("webhook-delivery", worker.run)
        while not threads.stop_event.wait(1.0):
            pass
    finally:
        threads.stop(settings.webhook_timeout_s + 30)
        engine.dispose()
    if threads.failures:
        raise SystemExit(f"citywarn deliver stopped because the worker died: {threads.failures}")


if __name__ == "__main__":
    main()
