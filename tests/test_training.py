"""Per-kind models are trained from the store's history, saved with their range, and reloaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from app.services import Services, build_services
from app.workers import train_now
from config.settings import Settings
from models.training import latest_kind_models
from store.schemas import Point

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@pytest.fixture
def svc(tmp_path: Path, request: pytest.FixtureRequest) -> Services:
    # No broker is needed to train; the producer is built but never used.
    services = build_services(
        Settings(
            kafka_bootstrap="127.0.0.1:9",
            store_url=f"file://{tmp_path}/s.db",
            database_url=f"sqlite:///{tmp_path}/state.db",
        )
    )
    request.addfinalizer(services.close)
    return services


def test_kinds_with_history_get_a_versioned_model_and_others_are_skipped(svc: Services) -> None:
    rng = np.random.default_rng(3)
    start = NOW - timedelta(days=3)
    points = [
        Point(
            sensor,
            "gas",
            "g-oldtown-05",
            int((start + timedelta(minutes=5 * i)).timestamp()) * 10**9,
            float(1.5 + 0.2 * rng.standard_normal()),
        )
        for sensor in ("gas-a", "gas-b")
        for i in range(800)
    ]
    svc.store.write(points)

    trained = train_now(svc, now=NOW)
    assert set(trained) == {"gas"}  # the other kinds have no history in this store
    [stored] = svc.models.list("gas")
    assert stored.version == trained["gas"].version
    assert stored.trained_to == NOW and stored.trained_from == NOW - timedelta(days=14)
    assert stored.description["n_samples"] == 1600

    reloaded = latest_kind_models(svc.models)["gas"]
    ts = np.arange(100) * 300.0
    values = 1.5 + 0.2 * rng.standard_normal(100)
    assert np.array_equal(reloaded.score_series(ts, values), trained["gas"].score_series(ts, values))
