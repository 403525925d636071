"""``python -m bench.api`` as the maintainers run it, for a few seconds: every figure is there and sane."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.api import load

FIGURES = {"warnings_rps", "warnings_p99_ms", "series_rps", "series_p99_ms", "ingest_rate"}


def test_a_short_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    # One demo day keeps the run short; its page lists fewer than 50 warnings.
    command = [
        "-m",
        "bench.api",
        "--duration",
        "3",
        "--concurrency",
        "2",
        "--rate",
        "1000",
        "--demo-days",
        "1",
    ]
    command += ["--json", str(out)]
    done = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures.keys() >= FIGURES
    assert figures["warnings_rps"] > 0 and figures["series_rps"] > 0
    assert 0 < figures["warnings_p99_ms"] < 10_000 and 0 < figures["series_p99_ms"] < 10_000
    assert figures["warnings_errors"] == 0 and figures["series_errors"] == 0
    # The pacing holds the asked rate: neither far short of it nor a burst past it.
    assert 800 <= figures["ingest_rate"] <= 1100
    # The service's own count moved while the readings flowed.
    assert figures["stored_rate"] > 0
    # The demo day opened warnings and stored the hour the series requests read.
    assert figures["warnings_page_items"] > 0 and figures["series_points"] > 0
    assert "warnings" in done.stdout and "series" in done.stdout and "cores shared" in done.stdout


class _Answers(BaseHTTPRequestHandler):
    """200 on the warnings page, 503 on anything else; every other answer closes its connection."""

    protocol_version = "HTTP/1.1"
    answered = 0

    def do_GET(self) -> None:
        type(self).answered += 1
        status = 200 if self.path.startswith("/v1/warnings") else 503
        body = b'{"items": []}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if self.answered % 2:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_the_load_generator_counts_answers_and_errors_per_endpoint() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        warnings, series = asyncio.run(
            load(url, {"Authorization": "Bearer k"}, ["/v1/sensors/a/series"], 2, 1.0)
        )
    finally:
        server.shutdown()
        server.server_close()
    assert warnings.requests > 0 and warnings.errors == 0
    assert series.requests == 0 and series.errors > 0
    assert warnings.p50_ms <= warnings.p95_ms <= warnings.p99_ms
