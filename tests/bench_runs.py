"""Running a bench module as its users do, for the tests that check what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def bench_figures(module: str, *args: str) -> dict[str, Any]:
    """``python -m MODULE ARGS``, which must succeed; its figures, the JSON object on its last line."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
