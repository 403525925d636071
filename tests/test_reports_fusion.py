"""Reports and fusion on the real broker and store: bursts warn, spread reports do not,
and a gauge anomaly plus residents' reports in one grid make one, surer warning."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

import yaml

from app.services import Services, build_services
from app.workers import build_ingest_worker, build_report_worker
from bench.isolation import isolated_settings
from config.areas import load_areas
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.kafka import ensure_topics, producer_config
from ingest.producer import ConfirmedProducer
from tests.pipeline_harness import committed_total, read_topic, wait_until

AREAS = load_areas()
# Local 08:30 (UTC+8) yesterday: a busy morning hour.
RUSH = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=30, second=0, microsecond=0)


def far_apart_grids(n: int) -> list[str]:
    """Grids of which no two touch, so fusion with neighbours cannot join them."""
    grids = [g.id for g in AREAS.grids()]
    chosen: list[str] = []
    for g in grids:
        if all(g not in AREAS.neighbours(c) for c in chosen):
            chosen.append(g)
        if len(chosen) == n:
            return chosen
    raise AssertionError("not enough separate grids")


def report(rid: str, area: str, ts: datetime, category: str | None, text: str) -> dict[str, object]:
    return {
        "report_id": rid,
        "source": "hotline",
        "category": category,
        "text": text,
        "ts": ts.isoformat(),
        "area": area,
    }


@contextmanager
def both_workers(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)
    ensure_topics(settings)
    stop = threading.Event()
    threads = [
        threading.Thread(target=w.run, args=(stop,), daemon=True)
        for w in (build_ingest_worker(svc), build_report_worker(svc))
    ]
    for t in threads:
        t.start()
    try:
        yield svc
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        svc.close()


def send(settings: Settings, topic: str, messages: list[dict[str, object]], key: str) -> None:
    producer = ConfirmedProducer(producer_config(settings))
    producer.send_all(topic, [(str(m[key]).encode(), json.dumps(m).encode(), None) for m in messages])
    producer.close()


def wait_for_commits(settings: Settings, topic: str, group: str, n: int) -> None:
    partitions = settings.topic_partitions
    wait_until(
        lambda: committed_total(settings.kafka_bootstrap, group, topic, partitions) >= n,
        timeout_s=90,
        what=f"{n} messages of {topic} to be committed",
    )


def with_road_gauges(tmp_path: Path, gauges: dict[str, str]) -> Path:
    """The city's catalog plus road-water gauges (kind lines only) in the given grids.

    Ingest takes readings from catalogued sensors only, so a test that needs a
    gauge where the city has none registers it, as the city would.
    """
    doc = yaml.safe_load(Settings().catalog_path.read_text())
    for sensor_id, grid in gauges.items():
        area = AREAS.area(grid)
        assert area is not None
        inside = area.geometry.representative_point()
        doc["sensors"].append(
            {"id": sensor_id, "kind": "water_level", "area": grid, "lat": inside.y, "lon": inside.x}
        )
    path = tmp_path / "sensors.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def settings_for(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/s.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        checkpoint_interval_s=0.5,
    )


def test_a_burst_in_one_grid_warns_and_the_same_reports_spread_out_do_not(
    broker: EmbeddedBroker,
    tmp_path: Path,
) -> None:
    settings = settings_for(broker, tmp_path)
    burst_grid, *spread_grids = far_apart_grids(5)
    burst = [
        report(
            f"gas-burst-{i}",
            burst_grid,
            RUSH + timedelta(minutes=2 * i),
            "gas_leak",
            "Strong smell of gas in the stairwell",
        )
        for i in range(4)
    ]
    spread = [
        report(
            f"gas-spread-{i}",
            g,
            RUSH + timedelta(hours=1, minutes=2 * i),
            "gas_leak",
            "Smell of gas near the bus stop",
        )
        for i, g in enumerate(spread_grids)
    ]
    with both_workers(settings) as svc:
        send(settings, settings.topic_reports, burst + spread, key="area")
        wait_for_commits(settings, settings.topic_reports, f"{settings.consumer_group}-reports", 8)
        warnings = svc.warnings.list().items
        assert [(w.hazard, w.area) for w in warnings] == [("gas_leak", burst_grid)]
        detail = svc.warnings.get(warnings[0].id)
        assert detail is not None
        listed = {r for e in detail.evidence for r in e.report_ids}
        assert listed == {str(r["report_id"]) for r in burst}
        assert "report" in detail.explanation
        assert svc.reports.count() == 8


def test_gauge_anomaly_and_flood_reports_in_one_grid_fuse_into_one_surer_warning(
    broker: EmbeddedBroker,
    tmp_path: Path,
) -> None:
    gauge_only, reports_only, both = far_apart_grids(3)
    catalog = with_road_gauges(tmp_path, {"test-wl-a": gauge_only, "test-wl-c": both})
    settings = settings_for(broker, tmp_path).model_copy(update={"catalog_path": catalog})
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    readings: list[dict[str, object]] = []
    for sensor, area in (("test-wl-a", gauge_only), ("test-wl-c", both)):
        for i in range(600):
            ts = end - timedelta(minutes=5 * (600 - i))
            value = 0.02 + 0.004 * ((i * 7) % 5 - 2)
            readings.append(
                {
                    "sensor_id": sensor,
                    "kind": "water_level",
                    "value": value,
                    "ts": ts.isoformat(),
                    "area": area,
                }
            )
        # Water on the road, unusual for this gauge but below the 0.15 m blue line.
        readings.append(
            {"sensor_id": sensor, "kind": "water_level", "value": 0.13, "ts": end.isoformat(), "area": area}
        )
    reports = [
        report(
            f"{area}-{i}",
            area,
            end - timedelta(minutes=8 - 2 * i),
            "flood",
            "River water coming over the embankment 河水漫堤",
        )
        for area in (reports_only, both)
        for i in range(4)
    ]

    with both_workers(settings) as svc:
        send(settings, settings.topic_readings, readings, key="sensor_id")
        send(settings, settings.topic_reports, reports, key="area")
        wait_for_commits(settings, settings.topic_readings, settings.consumer_group, len(readings))
        wait_for_commits(settings, settings.topic_reports, f"{settings.consumer_group}-reports", 8)
        by_area = {w.area: w for w in svc.warnings.list(scope="grid").items}  # the grids, not roll-ups

    assert set(by_area) == {gauge_only, reports_only, both}
    assert {w.hazard for w in by_area.values()} == {"flood"}
    fused = by_area[both]
    assert fused.confidence > by_area[gauge_only].confidence
    assert fused.confidence > by_area[reports_only].confidence
    assert (by_area[gauge_only].certainty, by_area[reports_only].certainty) == ("Possible", "Possible")
    assert fused.certainty == "Likely"
    assert "test-wl-c" in fused.explanation and "4 flood report(s)" in fused.explanation


def test_bad_report_messages_go_to_dead_letter_and_the_rest_is_kept(
    broker: EmbeddedBroker,
    tmp_path: Path,
) -> None:
    settings = settings_for(broker, tmp_path)
    now = datetime.now(UTC)
    good = report("ok-1", "g-oldtown-05", now, "fire", "Smoke from a shop")
    bad = {
        "nowhere": {**report("b-1", "g-oldtown-05", now, "fire", "x"), "area": None},
        "category": report("b-2", "g-oldtown-05", now, "volcano", "lava"),
        "text": report("b-3", "g-oldtown-05", now, "fire", "x" * 5000),
        "coords": {
            **report("b-4", "g-oldtown-05", now, "fire", "x"),
            "area": None,
            "lat": 95.0,
            "lon": 114.3,
        },
    }
    with both_workers(settings) as svc:
        send(settings, settings.topic_reports, [good, *bad.values(), good], key="report_id")
        wait_for_commits(settings, settings.topic_reports, f"{settings.consumer_group}-reports", 6)
        assert svc.reports.count() == 1
    dead = read_topic(broker.bootstrap, settings.topic_deadletter, 4)
    reasons = sorted(dict(m.headers())["reason"].decode().split(":")[0] for m in dead)
    assert reasons == ["area", "category", "lat", "text"]


def test_grids_chosen_for_these_tests_do_not_touch() -> None:
    grids = far_apart_grids(5)
    assert all(b not in AREAS.neighbours(a) for a, b in combinations(grids, 2))
