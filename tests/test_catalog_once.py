"""The catalog is parsed once per process: build_services takes the one the start-up check loaded.

At 10,000 sensors parsing the YAML takes seconds, so every ``citywarn``
command paid it twice. The check's catalog is reused only while the file is
the one it read; a file changed since is loaded again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app import preflight
from app.preflight import checked_settings
from app.services import build_services
from config.settings import CITY_DIR


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings from the environment, as a command gets them, with a catalog file of the test's own."""
    for name in list(os.environ):
        if name.startswith("CITYWARN_"):
            monkeypatch.delenv(name)
    catalog = tmp_path / "sensors.yaml"
    shutil.copy(CITY_DIR / "sensors.yaml", catalog)
    monkeypatch.setenv("CITYWARN_CATALOG_PATH", str(catalog))
    monkeypatch.setenv("CITYWARN_DATABASE_URL", f"sqlite:///{tmp_path}/state.sqlite3")
    monkeypatch.setenv("CITYWARN_STORE_URL", f"file://{tmp_path}/store.sqlite3")
    monkeypatch.setattr(preflight, "_checked_catalog", None)
    return catalog


def test_services_take_the_catalog_the_check_loaded(env: Path) -> None:
    settings, result = checked_settings()
    assert result.city is not None
    svc = build_services(settings)
    try:
        assert svc.catalog is result.city.catalog
    finally:
        svc.close()


def test_a_catalog_changed_since_the_check_is_loaded_again(env: Path) -> None:
    settings, result = checked_settings()
    assert result.city is not None
    env.write_text(env.read_text(encoding="utf-8") + "\n# edited after the check\n", encoding="utf-8")
    svc = build_services(settings)
    try:
        assert svc.catalog is not result.city.catalog
        assert svc.catalog == result.city.catalog  # same content, read again
    finally:
        svc.close()


def test_without_a_check_the_services_load_the_catalog_themselves(env: Path) -> None:
    settings, _ = checked_settings()
    preflight._checked_catalog = None  # a process that did not run the check (a test, a bench)
    svc = build_services(settings)
    try:
        assert len(svc.catalog.sensors) > 0
    finally:
        svc.close()
