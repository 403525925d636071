"""Human reports, kept in the state database (SQLite or PostgreSQL).

Reports are few (hundreds an hour, not tens of thousands a second) and are
read by id, area and category, which a relational table serves better than a
time-series store. Inserting an id that exists is a no-op: a hotline system
that resends its queue after a restart creates no duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store.schemas import ReportRecord

# Created and changed by the state database's migrations (alerts/migrations), not from here.
metadata = sa.MetaData()

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("report_id", sa.String(128), primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("category_inferred", sa.Boolean, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("ts_ns", sa.BigInteger, nullable=False),
    sa.Column("area", sa.String(128), nullable=False),
    sa.Column("lat", sa.Float),
    sa.Column("lon", sa.Float),
    sa.Column("outside_areas", sa.Boolean, nullable=False),
    sa.Column("media", sa.JSON, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("reports_area_ts", "area", "ts_ns"),
    sa.Index("reports_category_ts", "category", "ts_ns"),
)


class ReportRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def save(self, records: Sequence[ReportRecord]) -> None:
        if not records:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "report_id": r.report_id,
                "source": r.source,
                "category": r.category,
                "category_inferred": r.category_inferred,
                "text": r.text,
                "ts_ns": r.ts_ns,
                "area": r.area,
                "lat": r.lat,
                "lon": r.lon,
                "outside_areas": r.outside_areas,
                "media": list(r.media),
                "received_at": now,
            }
            for r in records
        ]
        with self.engine.begin() as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            conn.execute(insert(reports).on_conflict_do_nothing(index_elements=["report_id"]), rows)

    def list(
        self,
        *,
        area: str | None = None,
        category: str | None = None,
        source: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[ReportRecord], int]:
        """Newest first, with the total matching count for pagination.

        A filter holding U+0000 matches nothing: no stored text can hold it, and PostgreSQL
        refuses it even in a comparison.
        """
        if any("\x00" in value for value in (area, category, source) if value):
            return [], 0
        c = reports.c
        where = []
        if area:
            where.append(c.area == area)
        if category:
            where.append(c.category == category)
        if source:
            where.append(c.source == source)
        if start_ns is not None:
            where.append(c.ts_ns >= start_ns)
        if end_ns is not None:
            where.append(c.ts_ns < end_ns)
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(reports).where(*where)).scalar_one()
            rows = conn.execute(
                sa.select(reports)
                .where(*where)
                .order_by(c.ts_ns.desc(), c.report_id)
                .limit(limit)
                .offset(offset)
            ).all()
        return [_record(r) for r in rows], int(total)

    def by_ids(self, ids: Sequence[str]) -> dict[str, ReportRecord]:
        """The stored reports among these ids (an id not stored is absent), read in chunks of 500."""
        wanted = sorted(set(ids))
        found: dict[str, ReportRecord] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                rows = conn.execute(sa.select(reports).where(reports.c.report_id.in_(wanted[i : i + 500])))
                found |= {r.report_id: r for r in map(_record, rows)}
        return found

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(reports)).scalar_one())


def _record(row: sa.Row[tuple[object, ...]]) -> ReportRecord:
    m = row._mapping
    return ReportRecord(
        report_id=m["report_id"],
        source=m["source"],
        category=m["category"],
        category_inferred=bool(m["category_inferred"]),
        text=m["text"],
        ts_ns=int(m["ts_ns"]),
        area=m["area"],
        lat=m["lat"],
        lon=m["lon"],
        outside_areas=bool(m["outside_areas"]),
        media=tuple(m["media"] or ()),
    )
