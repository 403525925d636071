"""A handover at a stop or a revoke: snapshots instead of long logs, and nothing else changes.

What must hold: a series restored after a handover scores exactly as if never stopped, and
replays nothing of a long log; no checkpoint row moves (positions, and the ``updated_at`` that
``app.silence`` reads); a snapshot older than the stored one never replaces it; a handover cut
short by its time budget or by a failing write loses nothing. On the real state databases
(SQLite and PostgreSQL); the worker's part on the real broker (Tansu) and PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts import db, sinks
from alerts.checkpoints import CheckpointRepository
from alerts.service import WarningService
from alerts.sinks import DetectionSink
from app.services import Services, build_services
from app.workers import build_ingest_worker, scoring_engine
from bench.isolation import as_json, isolated_settings
from demo.city import demo_readings
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics, producer_config
from ingest.producer import ConfirmedProducer
from models.engine import HANDOVER_MIN_POINTS, ScoringEngine
from models.multivariate import KindModel
from models.series_checkpoint import POINT_BYTES, SeriesCheckpoint
from models.signals import Signal
from tests.factories import CATALOG
from tests.pipeline_harness import committed_total, wait_until
from tests.test_incremental_checkpoints import (
    NOW,
    POINTS,
    POSITIONS,
    SENSORS,
    key,
    new_engine,
    run,
    whole,
)
from tests.test_incremental_checkpoints import gas_model as gas_model  # the module's fixture

HEALTH = {"fault": None}
END = datetime.now(UTC).replace(microsecond=0)


def checkpointed(repo: CheckpointRepository, scorer: ScoringEngine, upto: int) -> list[Signal]:
    """Score ``POINTS[:upto]`` in batches of 37, each checkpointed, as a worker does."""
    signals: list[Signal] = []
    for start in range(0, upto, 37):
        stop = min(upto, start + 37)
        signals += scorer.score(POINTS[start:stop], POSITIONS[start:stop])
        repo.save_series(scorer.checkpoint(), log="log-a", now=NOW)
    return signals


def logged_points(state_db: sa.Engine) -> dict[str, int]:
    """Points each series' restore would replay: its deltas after its snapshot."""
    s, d = db.snapshots.c, db.deltas.c
    with state_db.connect() as conn:
        rows = conn.execute(
            sa.select(d.sensor_id, sa.func.sum(sa.func.length(d.points)))
            .join(db.snapshots, s.sensor_id == d.sensor_id)
            .where(d.learned > s.learned)
            .group_by(d.sensor_id)
        ).all()
    return {sid: int(size) // POINT_BYTES for sid, size in rows}


def checkpoint_rows(state_db: sa.Engine) -> dict[str, tuple[object, ...]]:
    c = db.checkpoints.c
    with state_db.connect() as conn:
        rows = conn.execute(sa.select(c.sensor_id, c.partition, c.offset, c.updated_at, c.state)).all()
    return {r.sensor_id: tuple(r[1:]) for r in rows}


def sink_of(scorer: ScoringEngine, repo: CheckpointRepository, state_db: sa.Engine) -> DetectionSink:
    from tests.factories import PLAYBOOKS

    return DetectionSink(
        engine=scorer,
        warnings=WarningService(state_db, catalog=CATALOG, playbooks=PLAYBOOKS),
        checkpoints=repo,
    )


@pytest.mark.parametrize("cut", [1650, 2900])
def test_a_handed_over_series_replays_nothing_and_continues_exactly(
    engine: sa.Engine, gas_model: KindModel, cut: int
) -> None:
    uninterrupted = new_engine(gas_model)
    expected = run(uninterrupted, POINTS, POSITIONS)
    repo = CheckpointRepository(engine)
    first = new_engine(gas_model)
    before = checkpointed(repo, first, cut)
    long_logs = {sid for sid, n in logged_points(engine).items() if n >= HANDOVER_MIN_POINTS}
    assert long_logs, "some series hold a long log at the cut"
    rows = checkpoint_rows(engine)

    sink_of(first, repo, engine).hand_over()

    assert first.handover_order() == [], "the engine counts its long logs as gone"
    assert checkpoint_rows(engine) == rows, "no position and no updated_at moves"
    left = logged_points(engine)
    assert all(left.get(sid, 0) == 0 for sid in long_logs)
    assert all(n < HANDOVER_MIN_POINTS for n in left.values())
    resumed = new_engine(gas_model)
    resumed.restore(repo.load(SENSORS))
    after = run(resumed, POINTS[cut:], POSITIONS[cut:])
    assert sorted(before + after, key=key) == sorted(expected, key=key)
    assert whole(resumed) == whole(uninterrupted)


def test_no_handover_while_points_are_not_checkpointed(engine: sa.Engine, gas_model: KindModel) -> None:
    """A snapshot ahead of its series' saved position would have those points learned twice."""
    repo = CheckpointRepository(engine)
    scorer = new_engine(gas_model)
    checkpointed(repo, scorer, 1650)
    assert scorer.handover_order()
    scorer.score(POINTS[1650:1660], POSITIONS[1650:1660])
    assert scorer.handover_order() == []
    repo.save_series(scorer.checkpoint(), log="log-a", now=NOW)
    assert scorer.handover_order()


def test_the_longest_logs_go_first(engine: sa.Engine, gas_model: KindModel) -> None:
    scorer = new_engine(gas_model)
    checkpointed(CheckpointRepository(engine), scorer, 2900)
    order = scorer.handover_order()
    logs = logged_points(engine)
    assert [logs[sid] for sid in order] == sorted((logs[sid] for sid in order), reverse=True)
    assert all(logs[sid] >= HANDOVER_MIN_POINTS for sid in order)


def test_a_stale_handover_takes_no_newer_state_back(engine: sa.Engine) -> None:
    """A worker that lost its partitions without knowing it hands over a state older than the new
    owner's: the newer snapshot and the points logged after it stay."""
    repo = CheckpointRepository(engine)
    sid = "gas-oldtown-01"
    record = SeriesCheckpoint(sid, "recordensemble", (0, 1), 10, HEALTH)
    repo.save_series([record._replace(snapshot=b"old")], log="a", now=NOW)
    repo.save_series([record._replace(learned=20, snapshot=b"newer")], log="a", now=NOW)
    repo.save_series([record._replace(learned=25, delta=bytes(5 * POINT_BYTES))], log="a", now=NOW)

    repo.hand_over([record._replace(learned=15, snapshot=b"stale")])
    state = repo.load([sid])[sid]["state"]
    assert (state["learned"], state["snapshot"], len(state["deltas"])) == (20, b"newer", 1)

    repo.hand_over([record._replace(learned=25, snapshot=b"handed")])
    state = repo.load([sid])[sid]["state"]
    assert (state["learned"], state["snapshot"], state["deltas"]) == (25, b"handed", [])


class FailingOnSecondWrite(CheckpointRepository):
    """The real repository, whose second handover write fails as if the database went away (fault
    injection)."""

    writes = 0

    def hand_over(self, records: Sequence[SeriesCheckpoint]) -> None:
        self.writes += 1
        if self.writes == 2:
            raise sa.exc.OperationalError(
                "INSERT INTO detector_snapshots ...", {}, ConnectionError("injected")
            )
        super().hand_over(records)


@pytest.mark.parametrize("fault", ["write-fails", "no-time-left"])
def test_a_handover_cut_short_loses_nothing(
    engine: sa.Engine,
    gas_model: KindModel,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sinks, "HANDOVER_CHUNK", 1)
    if fault == "no-time-left":
        monkeypatch.setattr(sinks, "HANDOVER_BUDGET_S", 0.0)
    cut = 2900
    uninterrupted = new_engine(gas_model)
    expected = run(uninterrupted, POINTS, POSITIONS)
    repo = FailingOnSecondWrite(engine) if fault == "write-fails" else CheckpointRepository(engine)
    first = new_engine(gas_model)
    before = checkpointed(repo, first, cut)
    order = first.handover_order()
    assert len(order) >= 2
    logs = logged_points(engine)

    with caplog.at_level(logging.INFO, logger="alerts.sinks"):
        sink_of(first, repo, engine).hand_over()

    left = logged_points(engine)
    handed = [sid for sid in order if left.get(sid, 0) == 0]
    if fault == "write-fails":
        assert handed == order[:1], "the first chunk was written, the failed one and the rest were not"
        assert any("handover stopped after 1 of" in r.getMessage() for r in caplog.records)
        assert not any(first.known(sid) for sid in SENSORS), "the engine forgot what it counted as saved"
    else:
        assert handed == []
    assert all(left[sid] == logs[sid] for sid in order if sid not in handed), "the rest kept their logs"
    resumed = new_engine(gas_model)
    resumed.restore(repo.load(SENSORS))
    after = run(resumed, POINTS[cut:], POSITIONS[cut:])
    assert sorted(before + after, key=key) == sorted(expected, key=key)


# --- the worker's part: a stop and a revoke hand over ----------------------------------------------


def long_logs(state_db: sa.Engine) -> int:
    return sum(n >= HANDOVER_MIN_POINTS for n in logged_points(state_db).values())


def restored(svc: Services, ids: list[str]) -> dict[str, object]:
    """Every series as a new worker would restore it from what the state database holds now."""
    scorer = scoring_engine(svc)
    scorer.restore(CheckpointRepository(svc.engine).load(ids))
    return whole(scorer)


@pytest.mark.parametrize("how", ["stop", "revoke"])
def test_a_worker_hands_over_when_it_stops_or_gives_partitions_up(
    broker: EmbeddedBroker, postgres_url: str, tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopped, or joined by a second worker, a worker leaves snapshots for its long logs; what a new
    worker restores is the same state as before, and no offset or checkpoint row moved."""
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/s.sqlite3",
        database_url=postgres_url,
        batch_max_messages=300,
        checkpoint_interval_s=0.2,
    )
    ensure_topics(settings)
    readings = demo_readings(end=END, catalog=CATALOG)  # a day, every sensor every 5 minutes

    def produce(part: list[dict[str, object]]) -> None:
        producer = ConfirmedProducer(producer_config(settings))
        producer.send_all(settings.topic_readings, as_json(part))
        producer.close()

    def committed() -> int:
        return committed_total(
            broker.bootstrap, settings.consumer_group, settings.topic_readings, settings.topic_partitions
        )

    workers = []
    stops = []
    threads = []

    def start() -> None:
        svc = build_services(settings)
        worker = build_ingest_worker(svc)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        workers.append((svc, worker))
        stops.append(stop)
        threads.append(thread)

    # The last 72 readings of each sensor come once the worker has caught up: however its checkpoints
    # fell before (a loaded machine checkpoints less often), each series then logs those as points,
    # not as a snapshot (a snapshot falls due 128 points or more after the last).
    caught_up_at = len(readings) * 3 // 4
    produce(readings[:caught_up_at])
    start()
    try:
        wait_until(lambda: committed() >= caught_up_at, timeout_s=180, what="the first part committed")
        produce(readings[caught_up_at:])
        wait_until(lambda: committed() >= len(readings), timeout_s=180, what="every offset committed")
        svc = workers[0][0]
        state_db = svc.engine
        assert long_logs(state_db) > 0, "the worker holds long logs before it hands over"
        ids = sorted({str(r["sensor_id"]) for r in readings})
        before, rows = restored(svc, ids), checkpoint_rows(state_db)
        with caplog.at_level(logging.INFO, logger="alerts.sinks"):
            if how == "stop":
                stops[0].set()
                threads[0].join(60)
                assert not threads[0].is_alive()
            else:
                start()
                wait_until(
                    lambda: any("handed over" in r.getMessage() for r in caplog.records),
                    timeout_s=60,
                    what="the first worker's handover at its revoke",
                )
        assert any("handed over" in r.getMessage() for r in caplog.records)
        assert long_logs(state_db) == 0
        assert checkpoint_rows(state_db) == rows
        assert committed() == len(readings)
        assert restored(svc, ids) == before
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(60)
        for svc, _ in workers:
            svc.close()


def test_no_handover_while_a_staged_checkpoint_is_not_saved(
    engine: sa.Engine, gas_model: KindModel, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine counts a staged checkpoint's series as saved once staged; until its save has
    succeeded, what it holds is ahead of the saved positions, and the sink hands nothing over."""
    repo = CheckpointRepository(engine)
    scorer = new_engine(gas_model)
    checkpointed(repo, scorer, 1650)
    sink = sink_of(scorer, repo, engine)
    scorer.score(POINTS[1650:1700], POSITIONS[1650:1700])
    save = sink.stage_checkpoint(now=NOW)
    logs = logged_points(engine)
    assert scorer.handover_order(), "the engine alone would hand over"

    with caplog.at_level(logging.WARNING, logger="alerts.sinks"):
        sink.hand_over()
    assert logged_points(engine) == logs
    assert any("no handover" in r.getMessage() for r in caplog.records)

    save()
    sink.hand_over()
    assert all(n < HANDOVER_MIN_POINTS for n in logged_points(engine).values())
