"""``citywarn run`` as a child process for ``bench.replay``: started as a user would, stopped cleanly.

The child runs in its own working directory, so its default state (``./var``)
is private, and with an environment holding no ``CITYWARN_`` variable but the
ones passed: what it does is what the service does at its defaults.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from ingest.broker import free_port

START_TIMEOUT_S = 180.0  # the first start compiles the detector with numba


class ServiceFailed(RuntimeError):
    """The child exited or did not become ready; the message ends with its log's tail."""


class RunningService:
    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "citywarn.log"
        self.env = dict(env)
        self.exit_code: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.headers: dict[str, str] = {}  # an admin key's, once started

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start ``citywarn run`` and wait until it is ready and its readings consumer owns partitions."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
        self.headers = {"Authorization": f"Bearer {self._admin_key({**clean, **self.env})}"}
        self._proc = subprocess.Popen(
            [_citywarn(), "run", "--port", str(self.port)],
            cwd=self.root,
            env={**clean, **self.env},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while not self._joined():
            if self._proc.poll() is not None:
                raise ServiceFailed(f"citywarn run exited with {self._proc.returncode}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServiceFailed(f"citywarn run not ready after {timeout_s:.0f} s\n{self.log_tail()}")
            time.sleep(0.5)

    def _admin_key(self, env: Mapping[str, str]) -> str:
        """An admin key for the replay's posts and reads, made on the service's database as a user would."""
        made = subprocess.run(
            [_citywarn(), "keys", "create", "--role", "admin", "--label", "bench.replay"],
            cwd=self.root,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if made.returncode != 0:
            raise ServiceFailed(f"citywarn keys create exited with {made.returncode}\n{made.stderr[-3000:]}")
        return made.stdout.splitlines()[-1]

    def readiness(self) -> dict[str, Any]:
        """/readyz's body (also when it answers 503, which names what is wrong)."""
        answer = httpx.get(f"{self.url}/readyz", timeout=10)
        body: dict[str, Any] = answer.json()
        return body

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, as an operator stops it; SIGKILL only if it has not exited in ``timeout_s``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return self.exit_code if self.exit_code is not None else 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        self.exit_code = proc.returncode
        return proc.returncode

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def _joined(self) -> bool:
        try:
            body = self.readiness()
        except (httpx.HTTPError, ValueError):
            return False
        readings = body.get("consumers", {}).get("readings", {})
        return bool(body.get("ready")) and int(readings.get("partitions") or 0) > 0


def _citywarn() -> str:
    """The console script installed beside this interpreter, as ``make demo`` runs it."""
    script = Path(sys.executable).parent / "citywarn"
    if not script.exists():
        raise ServiceFailed(f"{script} not found: pip install -e . first")
    return str(script)
