"""Human reports in, stored records or refusals out; the category inferred when missing.

A report with neither an area nor coordinates cannot be placed on the map and
is refused; one whose coordinates fall outside every area is kept and
flagged, because a caller at the city's edge still matters. Text with control
characters other than tab and newline is refused: PostgreSQL cannot store
U+0000, and the others only garble a console or smuggle terminal escapes.
"""

from __future__ import annotations

import re
from datetime import datetime

from config.areas import AreaIndex
from config.taxonomy import Taxonomy
from config.timeutil import to_ns
from ingest.schemas import Rejection, Report
from ingest.validation import Invalid, TimeWindow, parse_message
from store.schemas import ReportRecord

FALLBACK_CATEGORY = "other"
# Where a report whose coordinates fall outside every area is kept: flagged, not dropped.
UNASSIGNED_AREA = "unassigned"
# Unicode's control characters (C0, DEL, C1), less tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class ReportValidator:
    def __init__(
        self,
        *,
        taxonomy: Taxonomy,
        areas: AreaIndex,
        max_text_chars: int,
        max_future_skew_s: float,
        max_past_age_s: float,
    ) -> None:
        self.taxonomy = taxonomy
        self.areas = areas
        self.max_text_chars = max_text_chars
        self.window = TimeWindow(max_future_skew_s=max_future_skew_s, max_past_age_s=max_past_age_s)

    def parse(self, raw: bytes, now: datetime) -> ReportRecord | Invalid:
        return parse_message(raw, now, model=Report, check=self.check)

    def check(self, r: Report, now: datetime) -> ReportRecord | list[Rejection]:
        problems: list[Rejection] = []
        if r.category is not None and r.category not in self.taxonomy.categories:
            problems.append(Rejection(field="category", reason="unknown category", value=r.category))
        if len(r.text) > self.max_text_chars:
            problems.append(
                Rejection(
                    field="text",
                    reason=f"longer than {self.max_text_chars} characters",
                    value=f"{len(r.text)} characters",
                )
            )
        if control := _CONTROL.search(r.text):
            problems.append(
                Rejection(
                    field="text",
                    reason=f"control character U+{ord(control.group()):04X}; only tab and newline may appear",
                    value=f"at character {control.start()}",
                )
            )
        problems.extend(self.window.check(r.ts, now))
        if (r.lat is None) != (r.lon is None):
            problems.append(
                Rejection(field="lat" if r.lat is None else "lon", reason="coordinates need both lat and lon")
            )
        elif r.area is None and r.lat is None:
            problems.append(Rejection(field="area", reason="no area and no coordinates"))
        if r.area is not None and r.area not in self.areas:
            problems.append(Rejection(field="area", reason="unknown area", value=r.area))
        if problems:
            return problems
        area = r.area
        if area is None and r.lat is not None and r.lon is not None:
            area = self.areas.assign(r.lon, r.lat)
        inferred = r.category is None
        category = r.category or self.taxonomy.infer(r.text) or FALLBACK_CATEGORY
        return ReportRecord(
            report_id=r.report_id,
            source=r.source,
            category=category,
            category_inferred=inferred,
            text=r.text,
            ts_ns=to_ns(r.ts),
            area=area or UNASSIGNED_AREA,
            lat=r.lat,
            lon=r.lon,
            outside_areas=area is None,
            media=tuple(str(m) for m in r.media),
        )
