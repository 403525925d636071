"""The OpenAPI document is the contract: schemathesis, every check, against a running `citywarn run --demo`.

The service runs as the README starts it, at its default settings but one (the
limit on failed authentications, see the fixture); schemathesis sends the
demo's admin key and keeps under the default per-key allowance, so a 429 it
meets is the service working, not noise. tests/schemathesis.toml says where a
well-shaped body may still be refused for its meaning. The run is seeded, so
a failure here reproduces with the same command (printed on failure).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline_harness import demo_run

SEED = 20261201
# Per operation and phase; the whole run is a few thousand requests.
MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A `citywarn run --demo` on a free port: its base URL and the admin key it wrote."""
    # The one setting changed: schemathesis sends hundreds of keyless requests from one address to
    # check each is a 401, which is what the anonymous limit exists to stop (tests/test_rate_limits.py).
    env = {"CITYWARN_RATE_LIMIT_ANONYMOUS": "100/second"}
    with demo_run(tmp_path_factory.mktemp("contract"), env) as run:
        yield run.base, run.key


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
