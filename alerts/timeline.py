"""A warning's timeline, the after-action record: what it saw and what was done, in time order.

Entries, each at its own time:

- ``report``: a human report behind the warning (at the time it was made), once however many
  bursts cite it; one the report store no longer holds is placed at the first burst citing it;
- ``reading``: a sensor's evidence row (at the time observed), with its value, unit and score;
- ``report_burst``: a burst of reports the report detector judged significant, with its score;
- ``transition``: a line of the warning's history (at the time recorded): who, what, from, to.

Ties at one instant keep a fixed order (``Rank``): reports, then evidence rows in the order stored,
then transitions in the order recorded, so evidence comes before the transition it caused.

Evidence rows and transitions can number thousands, so they stay in the state database and are
read a page at a time (``History``); the reports are read whole (they are few) and merged in.
Pages are by offset: while a warning still gathers evidence, a row observed earlier than the page
being read shifts the later pages by one; a settled warning pages exactly once through.

Extension point: webhook deliveries (issue 11) will be rows of the state database too; each becomes
one more ``Rank`` (after the transition that sent it), one more branch of the repository's
``history_slice`` union and ``history_count``, and one more entry model in ``TimelineEntry``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import IntEnum
from heapq import merge
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, Field

from alerts.schemas import Evidence, WarningEvent, WarningOut
from config.timeutil import from_ns

EXCERPT_CHARS = 200


class Rank(IntEnum):
    """The order of entries at one instant."""

    REPORT = 0
    EVIDENCE = 1
    TRANSITION = 2


class ReportEntry(BaseModel):
    type: Literal["report"] = "report"
    at: datetime = Field(description="When the report was made; if not stored, when first cited")
    report_id: str
    stored: bool = Field(description="False when the report store no longer holds it: only its id is known")
    source: str | None
    category: str | None
    area: str | None
    excerpt: str | None = Field(description=f"The report's text, its first {EXCERPT_CHARS} characters")


class ReadingEntry(BaseModel):
    type: Literal["reading"] = "reading"
    at: datetime
    sensor_id: str
    kind: str
    value: float
    unit: str | None
    score: float
    detector: str
    level: str | None = Field(description="The warning line crossed, if any")
    details: dict[str, Any]


class ReportBurstEntry(BaseModel):
    type: Literal["report_burst"] = "report_burst"
    at: datetime = Field(description="The time of the latest report in the burst")
    kind: str
    count: int = Field(description="Reports in the burst's window")
    score: float
    detector: str
    report_ids: list[str]
    details: dict[str, Any]


class TransitionEntry(BaseModel):
    type: Literal["transition"] = "transition"
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    from_status: str | None
    to_status: str
    from_level: str | None
    to_level: str
    note: str


TimelineEntry = Annotated[
    ReportEntry | ReadingEntry | ReportBurstEntry | TransitionEntry, Field(discriminator="type")
]


class TimelinePage(BaseModel):
    warning: WarningOut
    items: list[TimelineEntry]
    total: int
    limit: int
    offset: int


class History(Protocol):
    """The warning's evidence rows and events as one sequence in (time, rank, order stored)."""

    def history_count(self, warning_id: str, *, before: datetime | None = None) -> int: ...

    def history_slice(self, warning_id: str, *, offset: int, limit: int) -> list[Evidence | WarningEvent]: ...


class StoredReport(Protocol):
    """What a timeline shows of a report (``store.schemas.ReportRecord`` is one)."""

    @property
    def report_id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def ts_ns(self) -> int: ...
    @property
    def area(self) -> str: ...


def cited_reports(bursts: Sequence[Evidence]) -> dict[str, datetime]:
    """Each report id the bursts cite, with the time of the first burst citing it."""
    first: dict[str, datetime] = {}
    for burst in sorted(bursts, key=lambda e: e.observed_at):
        for rid in burst.report_ids:
            first.setdefault(rid, burst.observed_at)
    return first


def report_entries(cited: Mapping[str, datetime], stored: Mapping[str, StoredReport]) -> list[ReportEntry]:
    """One entry per cited report, in (time, id) order."""
    entries = []
    for rid, first_cited in cited.items():
        r = stored.get(rid)
        if r is None:
            entry = ReportEntry(
                at=first_cited,
                report_id=rid,
                stored=False,
                source=None,
                category=None,
                area=None,
                excerpt=None,
            )
        else:
            entry = ReportEntry(
                at=from_ns(r.ts_ns),
                report_id=rid,
                stored=True,
                source=r.source,
                category=r.category,
                area=r.area,
                excerpt=r.text[:EXCERPT_CHARS],
            )
        entries.append(entry)
    return sorted(entries, key=lambda e: (e.at, e.report_id))


def entry_of(row: Evidence | WarningEvent, units: Mapping[str, str]) -> TimelineEntry:
    if isinstance(row, WarningEvent):
        return TransitionEntry(**row.model_dump())
    if row.source == "reports":
        return ReportBurstEntry(
            at=row.observed_at,
            kind=row.kind,
            count=round(row.value),
            score=row.score,
            detector=row.detector,
            report_ids=row.report_ids,
            details=row.details,
        )
    return ReadingEntry(
        at=row.observed_at,
        sensor_id=row.sensor_id,
        kind=row.kind,
        value=row.value,
        unit=units.get(row.kind),
        score=row.score,
        detector=row.detector,
        level=row.level,
        details=row.details,
    )


def rank_of(entry: TimelineEntry) -> Rank:
    if isinstance(entry, ReportEntry):
        return Rank.REPORT
    return Rank.TRANSITION if isinstance(entry, TransitionEntry) else Rank.EVIDENCE


def first_report_on_page(
    reports: Sequence[ReportEntry], offset: int, before: Callable[[datetime], int]
) -> int:
    """How many reports come before merged position ``offset``.

    Report ``j`` sits at merged position ``j + before(its time)`` (history rows strictly earlier:
    at one instant reports come first), which grows with ``j``; so a binary search asks the
    database ``log2(len(reports))`` counts, not one per report.
    """
    positions = _Positions(reports, before)
    return bisect_left(positions, offset, hi=len(reports))


class _Positions:
    """The merged positions of the reports, computed only where the binary search looks."""

    def __init__(self, reports: Sequence[ReportEntry], before: Callable[[datetime], int]) -> None:
        self.reports = reports
        self.before = before

    def __getitem__(self, j: int) -> int:
        return j + self.before(self.reports[j].at)

    def __len__(self) -> int:
        return len(self.reports)


def page(
    warning: WarningOut,
    *,
    history: History,
    reports: Sequence[ReportEntry],
    units: Mapping[str, str],
    offset: int,
    limit: int,
) -> TimelinePage:
    """Entries ``offset`` to ``offset + limit`` of the warning's timeline, and how many there are."""
    wid = warning.id
    r0 = first_report_on_page(reports, offset, lambda at: history.history_count(wid, before=at))
    rows = history.history_slice(wid, offset=offset - r0, limit=limit)
    entries: list[TimelineEntry] = [entry_of(row, units) for row in rows]
    # Stable: at equal keys the reports (given first) stay first, the history keeps its order.
    merged = merge(reports[r0 : r0 + limit], entries, key=lambda e: (e.at, rank_of(e)))
    items = [e for _, e in zip(range(limit), merged, strict=False)]
    total = history.history_count(wid) + len(reports)
    return TimelinePage(warning=warning, items=items, total=total, limit=limit, offset=offset)
