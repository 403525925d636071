"""The configuration check every ``citywarn`` command runs before it starts anything.

Settings come from the environment and the city's files from disk; both are
checked together, and a failure is one line per error on stderr and exit
code 2, before a broker, a database or a port is touched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import ValidationError

import models.detectors  # noqa: F401  (registers the built-in detectors)
from config.catalog import Catalog
from config.check import CheckResult, Problem, check, settings_problems, unknown_variables
from config.settings import Settings
from models.registry import DETECTORS

EXIT_CONFIG_ERROR = 2

FileStamp = tuple[Path, int, int]  # resolved path, mtime in ns, size

# The catalog this process's check loaded, and its file's stamp from before the check read it.
# build_services takes it rather than parsing the same YAML again: seconds at 10,000 sensors.
_checked_catalog: tuple[FileStamp, Catalog] | None = None


def _stamp(path: Path) -> FileStamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return path.resolve(), st.st_mtime_ns, st.st_size


def checked_catalog(path: Path) -> Catalog | None:
    """The catalog the start-up check loaded from ``path``, if the file has not changed since; else None."""
    if _checked_catalog is None:
        return None
    stamp, catalog = _checked_catalog
    return catalog if _stamp(path) == stamp else None


def checked_settings() -> tuple[Settings, CheckResult]:
    """Settings from the environment and the result of checking every city file; exits 2 on any error.

    Variables that set nothing come back as ``warnings``, for the command to tell as it logs.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        _fail(settings_problems(exc))
    global _checked_catalog
    stamp = _stamp(settings.catalog_path)  # before the read: a change during it shows as another stamp
    result = check(settings, detectors=DETECTORS)
    if result.problems:
        _fail(result.problems)
    result.warnings += unknown_variables(os.environ)
    if result.city is not None and stamp is not None:
        _checked_catalog = stamp, result.city.catalog
    return settings, result


def _fail(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)
    raise SystemExit(EXIT_CONFIG_ERROR)
