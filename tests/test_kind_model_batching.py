"""The per-kind model scores a whole batch in one call, and a fit saved elsewhere is used within a poll."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from alerts import db
from models.engine import ScoringEngine
from models.features import history_needed, stacked_window_features, window_features
from models.multivariate import KindModel, fit_kind_model
from models.protocol import FloatArray
from models.training import ModelRefresher, latest_kind_models
from store.model_repository import ModelRepository
from store.schemas import Point
from tests.factories import CATALOG

T0 = 1_790_000_000 * 10**9
STEP = 300 * 10**9
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


class CountingModel(KindModel):
    """A kind model that counts how often the forest is asked to score."""

    calls: int = 0

    def score(self, features: FloatArray) -> FloatArray:
        self.calls += 1
        return super().score(features)


def fit(kind: str, seed: int, version: str, model_class: type[KindModel] = KindModel) -> KindModel:
    rng = np.random.default_rng(seed)
    history = [
        window_features(300.0 * np.arange(1000, dtype=np.float64), 1.5 + 0.2 * rng.standard_normal(1000))
        for _ in range(3)
    ]
    fitted = fit_kind_model(
        kind, np.vstack(history), trained_from=NOW - timedelta(days=14), trained_to=NOW, version=version
    )
    return model_class(**{name: getattr(fitted, name) for name in KindModel.__slots__})


def gas_batch(n_sensors: int, n_points: int, *, start: int, seed: int) -> list[Point]:
    """Interleaved readings of many gas sensors; bursts past the blue line make signals with model scores."""
    rng = np.random.default_rng(seed)
    values = 1.5 + 0.2 * rng.standard_normal((n_points, n_sensors))
    values[rng.random(values.shape) < 0.03] += 10.0  # past the blue line: a signal
    return [
        Point(f"gas-{s:03d}", "gas", "g-oldtown-05", T0 + (start + i) * STEP, float(values[i, s]))
        for i in range(n_points)
        for s in range(n_sensors)
    ]


def sensitive_engine(model: KindModel) -> ScoringEngine:
    """An engine whose per-kind model speaks often, so its exact scores show in many signals."""
    engine = ScoringEngine(CATALOG, detector="recordrarity", signal_threshold=0.5, multivariate_threshold=0.5)
    engine.set_kind_models({"gas": model})
    return engine


def test_one_model_call_per_kind_per_batch_scores_like_each_series_alone() -> None:
    model = fit("gas", seed=7, version="gas-v1", model_class=CountingModel)
    assert isinstance(model, CountingModel)
    batched, alone = sensitive_engine(model), sensitive_engine(model)
    offset, history, signals = 0, [], []
    for b, n_points in enumerate((5, 40, 1, 30)):  # short batches leave series with partial context
        points = gas_batch(25, n_points, start=b * 40, seed=b)
        positions = [(0, offset + i) for i in range(len(points))]
        offset += len(points)
        history += points

        model.calls = 0
        batched_signals = batched.score(points, positions)
        assert model.calls == 1

        alone_signals = []
        for sensor in sorted({p.sensor_id for p in points}):
            idx = [i for i, p in enumerate(points) if p.sensor_id == sensor]
            alone_signals += alone.score([points[i] for i in idx], [positions[i] for i in idx])
        assert model.calls == 1 + 25
        assert sorted(batched_signals, key=lambda s: (s.sensor_id, s.ts_ns)) == alone_signals
        signals += batched_signals
    assert batched.dirty_states() == alone.dirty_states()

    # Each signal carries the score the model gives its point within the sensor's whole series.
    expected: dict[tuple[str, int], float] = {}
    for sensor in {p.sensor_id for p in history}:
        own = [p for p in history if p.sensor_id == sensor]
        scores = model.score_series(np.array([p.ts_ns for p in own]) / 1e9, np.array([p.value for p in own]))
        expected |= {(sensor, p.ts_ns): score for p, score in zip(own, scores, strict=True)}
    with_model = [s for s in signals if "multivariate" in s.evidence]
    assert len(with_model) > 10
    assert all(s.evidence["multivariate"] == expected[s.sensor_id, s.ts_ns] for s in with_model)


def test_batched_scores_equal_per_series_scores_bit_for_bit() -> None:
    model = fit("gas", seed=7, version="gas-v1")
    rng = np.random.default_rng(5)
    segments = []
    for n, context in ((80, 12), (3, 0), (20, 5), (0, 0), (50, 12)):
        ts = T0 / 1e9 + 300.0 * np.arange(n) + rng.normal(0, 4, n)
        values = 1.5 + 0.2 * rng.standard_normal(n)
        values[n // 2 :] += 3.0 * (n > 10)
        segments.append((ts, values, min(context, n)))

    batched = model.score_streams(segments)
    expected = [model.score_series(ts, values)[context:] for ts, values, context in segments]
    assert [len(s) for s in batched] == [len(e) for e in expected]
    for got, want in zip(batched, expected, strict=True):
        assert np.array_equal(got, want)
    assert history_needed() == 12


def test_stacked_features_are_each_series_own_features_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    segments = []
    for _ in range(300):
        n = int(rng.integers(0, 90))
        ts = np.cumsum(rng.exponential(300.0, n)) + 1.7e9
        values = rng.uniform(0, 1000) + rng.uniform(0, 50) * rng.standard_normal(n)
        if n > 20 and rng.random() < 0.3:
            values[10:20] = values[10]  # a flatline
        segments.append((ts, values, int(rng.integers(0, n + 1))))

    stacked = stacked_window_features(segments)
    expected = np.vstack([window_features(ts, values)[context:] for ts, values, context in segments])
    assert np.array_equal(stacked, expected)


# --- a fit saved by another process is picked up ------------------------------------------------------


class NoHistory:
    """Training history with nothing in it: these tests are about loading fits, not making them."""

    def read_kind(self, kind: str, start_ns: int, end_ns: int) -> list[Point]:
        return []


@pytest.fixture(params=["sqlite", "postgresql"])
def archives(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[ModelRepository, ModelRepository]]:
    """Two handles on one state database: the service's, and a `citywarn train` process's."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        url = request.getfixturevalue("postgres_url")
    service, trainer = db.connect(url), db.open_engine(url)
    yield ModelRepository(service), ModelRepository(trainer)
    service.dispose()
    trainer.dispose()


def save(archive: ModelRepository, model: KindModel, now: datetime, blob: bytes | None = None) -> None:
    """Archive ``model`` as `citywarn train` does (``blob``: other bytes in its place)."""
    archive.save(
        version=model.version,
        kind=model.kind,
        trained_from=model.trained_from,
        trained_to=model.trained_to,
        description=model.describe(),
        blob=model.to_bytes() if blob is None else blob,
        now=now,
    )


def refresher(archive: ModelRepository, engine: ScoringEngine, poll_s: float) -> ModelRefresher:
    return ModelRefresher(
        kinds=["gas", "rainfall"],
        history=NoHistory(),
        archive=archive,
        window=timedelta(days=14),
        interval_s=86400.0,  # no scheduled refit during the test
        poll_s=poll_s,
        engine=engine,
        clock=lambda: NOW,
    )


def test_poll_loads_only_the_kinds_whose_newest_fit_changed(
    archives: tuple[ModelRepository, ModelRepository],
) -> None:
    service, trainer = archives
    save(trainer, fit("gas", 1, "gas-v1"), NOW - timedelta(hours=2))
    save(trainer, fit("rainfall", 2, "rain-v1"), NOW - timedelta(hours=2))
    engine = ScoringEngine(CATALOG, detector="recordrarity", signal_threshold=0.9)
    engine.set_kind_models(latest_kind_models(service))
    rain_before = engine.kind_models()["rainfall"]
    poller = refresher(service, engine, poll_s=60.0)

    assert poller.poll() == []  # nothing new: nothing loaded
    save(trainer, fit("gas", 3, "gas-v2"), NOW - timedelta(hours=1))
    assert poller.poll() == ["gas"]

    models = engine.kind_models()
    assert models["gas"].version == "gas-v2"
    assert models["rainfall"] is rain_before  # unchanged kinds are not reloaded
    assert poller.poll() == []


def test_a_fit_saved_by_another_process_is_used_within_the_poll_interval(
    archives: tuple[ModelRepository, ModelRepository],
) -> None:
    service, trainer = archives
    save(trainer, fit("gas", 1, "gas-v1"), NOW - timedelta(hours=2))
    engine = ScoringEngine(CATALOG, detector="recordrarity", signal_threshold=0.9)
    engine.set_kind_models(latest_kind_models(service))
    stop = threading.Event()
    thread = threading.Thread(target=refresher(service, engine, poll_s=0.05).run, args=(stop,))
    thread.start()
    try:
        save(trainer, fit("gas", 3, "gas-v2"), NOW - timedelta(hours=1))
        saved_at = time.monotonic()
        while engine.kind_models()["gas"].version != "gas-v2" and time.monotonic() - saved_at < 10.0:
            time.sleep(0.01)
        assert engine.kind_models()["gas"].version == "gas-v2"
    finally:
        stop.set()
        thread.join(10.0)
    assert not thread.is_alive()


class QuietGasHistory:
    """Two weeks of quiet methane from two sensors: enough to fit a gas model."""

    def read_kind(self, kind: str, start_ns: int, end_ns: int) -> list[Point]:
        if kind != "gas":
            return []
        rng = np.random.default_rng(4)
        return [
            Point(
                sensor, "gas", "g-oldtown-05", start_ns + i * STEP, float(1.5 + 0.2 * rng.standard_normal())
            )
            for sensor in ("gas-a", "gas-b")
            for i in range(300)
        ]


def test_the_scheduled_refit_still_swaps_its_fit_in(
    archives: tuple[ModelRepository, ModelRepository],
) -> None:
    service, _ = archives
    engine = ScoringEngine(CATALOG, detector="recordrarity", signal_threshold=0.9)
    refitting = ModelRefresher(
        kinds=["gas"],
        history=QuietGasHistory(),
        archive=service,
        window=timedelta(days=14),
        interval_s=0.05,
        poll_s=0.05,
        engine=engine,
        clock=lambda: NOW,
    )
    stop = threading.Event()
    thread = threading.Thread(target=refitting.run, args=(stop,))
    thread.start()
    try:
        started = time.monotonic()
        while "gas" not in engine.kind_models() and time.monotonic() - started < 10.0:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(10.0)
    assert not thread.is_alive()
    assert engine.kind_models()["gas"].version == service.latest_versions()["gas"]
    assert {stored.created_at for stored in service.list("gas")} == {NOW}
