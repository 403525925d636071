"""`citywarn run --demo`, as the README starts it: warnings within 90 s to its admin key, keys made by
`citywarn keys create` beside it, clean stop."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.broker import free_port
from tests.auth_helpers import cli_key


def check_keys(base: str, warnings: list[dict[str, Any]], *, cwd: Path, env: dict[str, str]) -> None:
    """No key: 401; a viewer may not acknowledge; an operator may, and is named in the history."""
    anonymous = httpx.get(f"{base}/v1/warnings", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.headers["Content-Type"].startswith("application/problem+json")
    # A new warning may still be pending its hold (alerts.lifecycle); an operator may take it on all the same.
    wid = next(w["id"] for w in warnings if w["status"] in ("active", "pending"))
    ack = f"{base}/v1/warnings/{wid}/acknowledge"
    viewer = cli_key("viewer", "wall screen", cwd=cwd, env=env)
    assert httpx.post(ack, headers={"Authorization": f"Bearer {viewer}"}, timeout=5).status_code == 403
    operator = cli_key("operator", "duty officer wang", cwd=cwd, env=env)
    done = httpx.post(
        ack, json={"note": "crew sent"}, headers={"Authorization": f"Bearer {operator}"}, timeout=5
    )
    assert done.status_code == 200, done.text
    last = done.json()["events"][-1]
    assert (last["action"], last["actor"], last["actor_role"]) == (
        "acknowledged",
        "duty officer wang",
        "operator",
    )


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
    base = f"http://127.0.0.1:{port}"
    key_file = tmp_path / "citywarn-demo.key"
    try:
        warnings: list[dict[str, Any]] = []
        while time.monotonic() - started < 90 and not warnings:
            time.sleep(1)
            try:
                admin = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
                warnings = httpx.get(f"{base}/v1/warnings", headers=admin, timeout=5).json()["items"]
            except (httpx.HTTPError, OSError, KeyError):
                continue
        assert warnings, f"no warning within 90 s; log tail:\n{log.read_text()[-3000:]}"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key_file.read_text().strip() in log.read_text()  # printed too
        check_keys(base, warnings, cwd=tmp_path, env=env)
        broker_pids = children_of(proc.pid)
        assert broker_pids, "the embedded broker should run as a child process"
    finally:
        proc.send_signal(stop_signal)
        code = proc.wait(30)
    assert code == 0, log.read_text()[-3000:]
    for pid in broker_pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
