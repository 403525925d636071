"""An integrator's webhook endpoint for the tests: a real HTTP server on a loopback address."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[BaseHTTPRequestHandler, "Received"], None]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in {"content-length": str(len(body)), **headers}.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


class Receiver:
    """Records every request, then answers it with ``answer`` (204 unless told otherwise)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.answer: Answer = lambda h, _r: reply(h, 204)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    receiver.requests.append(received)
                receiver.answer(self, received)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def wait_for(
        self, condition: Callable[[list[Received]], bool], timeout_s: float = 20.0
    ) -> list[Received]:
        """Poll until ``condition`` holds for what was received; fail with what came if it never does."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.received()
            if condition(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met in {timeout_s} s; got {len(got)} requests")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
