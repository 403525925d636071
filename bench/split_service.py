"""``citywarn serve`` and ``citywarn ingest`` as two processes, for ``bench.api --layout split``.

The production layout: the API and the consumers apart, each with a GIL of
its own, on the same settings (state database, store, broker). It stands in
for ``bench.replay_service.RunningService``: ``url`` and ``pid`` are the
API's, ``metrics_url`` the ingest process's ``/metrics`` (its counters and
consumer lag; the API process consumes nothing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

import httpx

from bench.metrics_text import sample_sums
from bench.replay_service import START_TIMEOUT_S, RunningService, ServiceFailed, _citywarn
from ingest.broker import free_port


class SplitService(RunningService):
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        super().__init__(root, env)
        self.metrics_url = f"http://127.0.0.1:{free_port()}"
        self.ingest_log = root / "ingest.log"
        self._ingest: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Both processes, once the database is migrated (by the key's command); ready when the API
        is and the ingest process reports lag for a readings partition (it joined the group)."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
        env = {**clean, **self.env}
        self.headers = {"Authorization": f"Bearer {self._admin_key(env)}"}
        metrics_port = self.metrics_url.rsplit(":", 1)[1]
        self._ingest = _spawn(["ingest", "--metrics-port", metrics_port], self.root, env, self.ingest_log)
        self._proc = _spawn(["serve", "--port", str(self.port)], self.root, env, self.log.open("ab"))
        deadline = time.monotonic() + timeout_s
        while not (self._api_ready() and self._ingest_joined()):
            if not self.alive():
                raise ServiceFailed(f"a process exited\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServiceFailed(f"not ready after {timeout_s:.0f} s\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM to both; the first non-zero exit code, else 0."""
        procs = [p for p in (self._proc, self._ingest) if p is not None]
        self._proc = self._ingest = None
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout_s))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait(timeout_s))
        self.exit_code = next((c for c in codes if c != 0), 0)
        return self.exit_code

    def alive(self) -> bool:
        procs = (self._proc, self._ingest)
        return all(p is not None and p.poll() is None for p in procs)

    def log_tail(self, chars: int = 3000) -> str:
        ingest = self.ingest_log.read_text(errors="replace")[-chars:] if self.ingest_log.exists() else ""
        return f"serve:\n{super().log_tail(chars)}\ningest:\n{ingest}"

    def _api_ready(self) -> bool:
        try:
            return bool(self.readiness().get("ready"))
        except (httpx.HTTPError, ValueError):
            return False

    def _ingest_joined(self) -> bool:
        try:
            text = httpx.get(f"{self.metrics_url}/metrics", timeout=10).text
        except httpx.HTTPError:
            return False
        return ("citywarn_consumer_lag_messages", "readings") in sample_sums(
            text, {"citywarn_consumer_lag_messages"}, by="stream"
        )


def _spawn(args: list[str], cwd: Path, env: dict[str, str], log: Path | IO[bytes]) -> subprocess.Popen[bytes]:
    out = log.open("ab") if isinstance(log, Path) else log
    return subprocess.Popen([_citywarn(), *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
