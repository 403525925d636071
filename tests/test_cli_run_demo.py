"""`citywarn run --demo`, as the README starts it: warnings within 90 s, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingest.broker import free_port


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_run_demo_serves_warnings_and_stops_cleanly(tmp_path: Path, stop_signal: int) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    # The console script installed beside this interpreter, as `make demo` runs it.
    citywarn = str(Path(sys.executable).parent / "citywarn")
    proc = subprocess.Popen(
        [citywarn, "run", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    started = time.monotonic()
    try:
        warnings: list[dict[str, object]] = []
        while time.monotonic() - started < 90 and not warnings:
            time.sleep(1)
            try:
                warnings = httpx.get(f"http://127.0.0.1:{port}/v1/warnings", timeout=5).json()["items"]
            except httpx.HTTPError:
                continue
        assert warnings, f"no warning within 90 s; log tail:\n{log.read_text()[-3000:]}"
        broker_pids = children_of(proc.pid)
        assert broker_pids, "the embedded broker should run as a child process"
    finally:
        proc.send_signal(stop_signal)
        code = proc.wait(30)
    assert code == 0, log.read_text()[-3000:]
    for pid in broker_pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
