"""``citywarn``: run everything in one process, or the API and the consumer apart."""

from __future__ import annotations

import argparse
import contextlib
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
from app.workers import build_ingest_worker
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics
from ingest.replay import replay

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
    run_p.add_argument("--demo-steps-per-s", type=float, default=10.0,
                       help="replay speed in 5-minute steps per second (default 10)")
    serve_p = sub.add_parser("serve", help="the API only, against configured servers")
    _http_args(serve_p)
    sub.add_parser("ingest", help="the consumer only, against configured servers")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if args.command == "run":
        run(settings, host=args.host, port=args.port, demo=args.demo,
            demo_steps_per_s=args.demo_steps_per_s)
    elif args.command == "serve":
        _serve(create_app(settings), args.host, args.port)
    else:
        ingest(settings)


def _http_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)


def run(settings: Settings, *, host: str, port: int, demo: bool, demo_steps_per_s: float) -> None:
    """Start Tansu unless a broker is configured, then the API, the consumer and the demo."""
    broker = None if settings.kafka_bootstrap else EmbeddedBroker().start()
    try:
        if broker is not None:
            log.info("embedded Tansu broker on %s (pid %s)", broker.bootstrap, broker.pid)
            settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap, **EMBEDDED_KAFKA})
        extra = {"demo": _demo_worker(demo_steps_per_s)} if demo else None
        app = create_app(settings, run_ingest=True, extra_workers=extra)
        _serve(app, host, port)
    finally:
        if broker is not None:
            broker.stop()
            log.info("embedded broker stopped")


def _demo_worker(steps_per_s: float) -> Callable[[Services], Callable[[threading.Event], object]]:
    def make(svc: Services) -> Callable[[threading.Event], object]:
        from ingest.demo_city import demo_readings

        def work(stop: threading.Event) -> None:
            messages = demo_readings(end=datetime.now(UTC), catalog=svc.catalog)
            log.info("demo: replaying %d readings of the demo city's day", len(messages))
            replay(svc.producer, svc.settings.topic_readings, messages,
                   steps_per_s=steps_per_s, stop=stop)

        return work

    return make


def ingest(settings: Settings) -> None:
    """Run the consumer in the foreground until SIGINT or SIGTERM; the batch in hand finishes."""
    svc = build_services(settings)
    ensure_topics(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        build_ingest_worker(svc).run(stop)
    finally:
        svc.close()


if __name__ == "__main__":
    main()
