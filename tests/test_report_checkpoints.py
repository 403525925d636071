"""Report consumers sharing the topic keep one burst detector per partition, never one between them.

Before, every report consumer saved its detector under one row, so the last
to checkpoint overwrote the others' counts, and a restarted consumer resumed
from somebody else's partitions.
"""

from __future__ import annotations

from pathlib import Path

from alerts import db
from alerts.checkpoints import CheckpointRepository
from alerts.service import WarningService
from alerts.sinks import ReportSink
from config.taxonomy import load_taxonomy
from config.timeutil import to_ns
from models.report_burst import ReportBurstDetector
from store.schemas import ReportRecord
from tests.factories import CATALOG, NOW, PLAYBOOKS

TAXONOMY = load_taxonomy()


def sink_on(engine_url: str) -> ReportSink:
    engine = db.connect(engine_url)
    return ReportSink(
        detector_factory=lambda: ReportBurstDetector(TAXONOMY),
        warnings=WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS),
        checkpoints=CheckpointRepository(engine),
    )


def gas_report(n: int, area: str) -> ReportRecord:
    return ReportRecord(
        report_id=f"{area}-{n}",
        source="hotline",
        category="gas_leak",
        category_inferred=False,
        text="smell of gas",
        ts_ns=to_ns(NOW) + n * 10**9,
        area=area,
    )


def observed(*reports: ReportRecord) -> dict[str, object]:
    """The state of a fresh detector that saw exactly these reports."""
    detector = ReportBurstDetector(TAXONOMY)
    detector.observe_batch([(r.area, r.category, r.ts_ns / 1e9, r.report_id) for r in reports])
    return detector.get_state()


def test_two_report_consumers_checkpoint_their_own_partitions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    first, second = sink_on(url), sink_on(url)
    oldtown = [gas_report(1, "g-oldtown-05")]
    lakeside = [gas_report(1, "g-lakeside-02"), gas_report(2, "g-lakeside-02")]
    first.process(oldtown, [(0, 7)], now=NOW)
    second.process(lakeside, [(1, 3), (1, 4)], now=NOW)
    first.checkpoint(now=NOW)
    second.checkpoint(now=NOW)

    saved = CheckpointRepository(db.connect(url)).load(["@reports/0", "@reports/1"])
    assert saved["@reports/0"]["state"] == observed(*oldtown)
    assert saved["@reports/1"]["state"] == observed(*lakeside)
