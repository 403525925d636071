"""bench.pipeline's latency watch sees evidence whose id commits after a higher one's.

Two workers write evidence in transactions of their own; the watch once read only ``id > highest
seen`` and lost the lower id for good. Real PostgreSQL, two real connections.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from alerts import db
from bench.pipeline import EvidenceWatch, ms_of
from tests.factories import insert_warning_row
from tests.pipeline_harness import wait_until

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def _evidence(conn: sa.Connection, sensor: str, at: datetime) -> None:
    conn.execute(
        db.evidence.insert().values(
            warning_id="w1",
            observed_at=at,
            sensor_id=sensor,
            kind="water_level",
            value=5.0,
            score=1.0,
            detector="threshold",
        )
    )


def test_an_id_committed_after_a_higher_one_is_seen(postgres_url: str) -> None:
    engine = db.connect(postgres_url)
    with engine.begin() as conn:
        insert_warning_row(conn, "w1", area="grid-1", at=T0)
    first, second = ("s-low", T0), ("s-high", T0 + timedelta(seconds=1))
    with EvidenceWatch(postgres_url) as watch:
        slow = engine.connect()
        slow_tx = slow.begin()
        _evidence(slow, *first)  # takes the lower id, commits last
        with engine.begin() as fast:
            _evidence(fast, *second)
        high = {(second[0], ms_of(second[1]))}
        wait_until(lambda: high <= watch.seen.keys(), timeout_s=5, what="the higher id")
        time.sleep(0.1)  # several polls pass with the lower id still uncommitted
        slow_tx.commit()
        slow.close()
        both = high | {(first[0], ms_of(first[1]))}
        wait_until(lambda: both <= watch.seen.keys(), timeout_s=5, what="the id that committed last")
    engine.dispose()
