"""The OpenAPI document is the contract: schemathesis, every check, against a running `citywarn run --demo`.

The service runs as the README starts it, at its default settings but one (the
limit on failed authentications, see the fixture); schemathesis sends the
demo's admin key and keeps under the default per-key allowance, so a 429 it
meets is the service working, not noise. tests/schemathesis.toml says where a
well-shaped body may still be refused for its meaning. The run is seeded, so
a failure here reproduces with the same command (printed on failure).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingest.broker import free_port

SEED = 20261201
# Per operation and phase; the whole run is a few thousand requests.
MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A `citywarn run --demo` on a free port: its base URL and the admin key it wrote."""
    cwd = tmp_path_factory.mktemp("contract")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWARN_")}
    # The one setting changed: schemathesis sends hundreds of keyless requests from one address to
    # check each is a 401, which is what the anonymous limit exists to stop (tests/test_rate_limits.py).
    env["CITYWARN_RATE_LIMIT_ANONYMOUS"] = "100/second"
    log = cwd / "run.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "citywarn"), "run", "--demo", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, cwd / "citywarn-demo.key", log)
        yield base, (cwd / "citywarn-demo.key").read_text().strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]


def _wait_ready(base: str, key_file: Path, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if key_file.exists() and httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the service was not ready within 90 s; log tail:\n{log.read_text()[-3000:]}")


def test_schemathesis_finds_nothing_with_every_check(demo_service: tuple[str, str], tmp_path: Path) -> None:
    base, key = demo_service
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(Path(__file__).parent / "schemathesis.toml"),
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        # Below the default per-key allowance (rate_limit_api), as a well-behaved client keeps.
        "--rate-limit",
        "25/s",
        "--no-color",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1200, check=False)
    shown = " ".join(command).replace(key, "$(cat citywarn-demo.key)")
    assert done.returncode == 0, f"{shown}\n\n{done.stdout[-20000:]}\n{done.stderr[-3000:]}"
