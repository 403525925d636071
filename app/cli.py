"""``citywarn``: run everything in one process, or the API and the consumer apart."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.services import Services, build_services
from app.training import train_kind_models
from app.workers import build_ingest_worker, build_report_worker, model_refresher
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics
from ingest.replay import Recorded, replay

log = logging.getLogger("citywarn")

# The embedded broker joins groups faster with short poll intervals (see Settings).
EMBEDDED_KAFKA = {"kafka_max_poll_interval_ms": 10_000, "kafka_session_timeout_ms": 6_000}


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising SIGINT/SIGTERM after its shutdown.

    uvicorn re-raises the captured signal once it has stopped, which would end
    the process before ``run`` stops the embedded broker and returns 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _serve(app: FastAPI, host: str, port: int) -> None:
    _Server(uvicorn.Config(app, host=host, port=port, log_level="info")).run()


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
    sub.add_parser("ingest", help="the consumers only, against configured servers")
    sub.add_parser("train", help="fit the per-kind models now from the store's history")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if args.command == "run":
        run(settings, host=args.host, port=args.port, demo=args.demo, demo_speed=args.demo_speed)
    elif args.command == "serve":
        _serve(create_app(settings), args.host, args.port)
    elif args.command == "train":
        svc = build_services(settings)
        try:
            for model in train_kind_models(svc, now=datetime.now(UTC)).values():
                print(json.dumps(model.describe()))
        finally:
            svc.close()
    else:
        ingest(settings)


def _http_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)


def run(settings: Settings, *, host: str, port: int, demo: bool, demo_speed: float) -> None:
    """Start Tansu unless a broker is configured, then the API, the consumer and the demo."""
    broker = None if settings.kafka_bootstrap else EmbeddedBroker().start()
    try:
        if broker is not None:
            log.info("embedded Tansu broker on %s (pid %s)", broker.bootstrap, broker.pid)
            settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap, **EMBEDDED_KAFKA})
        extra = {"demo": _demo_worker(demo_speed)} if demo else None
        app = create_app(settings, run_ingest=True, extra_workers=extra)
        _serve(app, host, port)
    finally:
        if broker is not None:
            broker.stop()
            log.info("embedded broker stopped")


def _demo_worker(speed: float) -> Callable[[Services], Callable[[threading.Event], object]]:
    def make(svc: Services) -> Callable[[threading.Event], object]:
        from demo.city import demo_readings, demo_reports

        def work(stop: threading.Event) -> None:
            end = datetime.now(UTC)
            topics = svc.settings
            events = [
                Recorded(topics.topic_readings, str(m["sensor_id"]), m)
                for m in demo_readings(end=end, catalog=svc.catalog)
            ]
            events += [
                Recorded(topics.topic_reports, str(m["area"]), m)
                for m in demo_reports(end=end, areas=svc.areas)
            ]
            log.info("demo: replaying the demo city's day, %d messages", len(events))
            replay(svc.producer, events, speed=speed, stop=stop)

        return work

    return make


def ingest(settings: Settings) -> None:
    """Run the readings and reports consumers until SIGINT or SIGTERM; batches in hand finish."""
    svc = build_services(settings)
    ensure_topics(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    readings = build_ingest_worker(svc)
    helpers = [
        threading.Thread(target=build_report_worker(svc).run, args=(stop,), name="report-ingest"),
        threading.Thread(
            target=model_refresher(svc, readings).run, args=(stop,), name="model-refit", daemon=True
        ),
    ]
    for thread in helpers:
        thread.start()
    try:
        readings.run(stop)
    finally:
        stop.set()
        helpers[0].join(60)
        svc.close()


if __name__ == "__main__":
    main()
