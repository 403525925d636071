"""The configuration check every ``citywarn`` command runs before it starts anything.

Settings come from the environment and the city's files from disk; both are
checked together, and a failure is one line per error on stderr and exit
code 2, before a broker, a database or a port is touched.
"""

from __future__ import annotations

import sys

from pydantic import ValidationError

import models.detectors  # noqa: F401  (registers the built-in detectors)
from config.check import CheckResult, Problem, check, settings_problems
from config.settings import Settings
from models.registry import DETECTORS

EXIT_CONFIG_ERROR = 2


def checked_settings() -> tuple[Settings, CheckResult]:
    """Settings from the environment and the result of checking every city file; exits 2 on any error."""
    try:
        settings = Settings()
    except ValidationError as exc:
        _fail(settings_problems(exc))
    result = check(settings, detectors=DETECTORS)
    if result.problems:
        _fail(result.problems)
    return settings, result


def _fail(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)
    raise SystemExit(EXIT_CONFIG_ERROR)
