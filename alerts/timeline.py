"""A warning's timeline, the after-action record: what it saw and what was done, in time order.

Entries, each at its own time:

- ``report``: a human report behind the warning (at the time it was made), once however many
  bursts cite it; one the report store no longer holds is placed at the first burst citing it;
- ``reading``: a sensor's evidence row (at the time observed), with its value, unit and score;
- ``report_burst``: a burst of reports the report detector judged significant, with its score;
- ``transition``: a line of the warning's history (at the time recorded): who, what, from, to;
- ``delivery``: a webhook delivery telling an integrator's subscription of a transition (at the
  transition's time, ``alerts.outbox``): the event type, the subscription, how it is going (status,
  attempts, last answer); never the target URL nor the body;
- ``recommendation``: an operator's step on one of its recommendations (accepted, rejected, done),
  with who took it (``alerts.recommendation_log``).

Ties at one instant keep a fixed order (``Rank``): reports, then evidence rows in the order stored,
then transitions in the order recorded, so evidence comes before the transition it caused, then
the deliveries telling of them in the order staged, then recommendation steps (an operator acts on
what the warning showed).

Evidence rows, transitions and deliveries can number thousands, so they stay in the state database
and are read a page at a time (``History``); the reports and recommendation steps are read whole
(they are few) and merged in.
Pages are by offset: while a warning still gathers evidence, a row observed earlier than the page
being read shifts the later pages by one; a settled warning pages exactly once through.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import IntEnum
from heapq import merge
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, Field

from alerts.recommendation_log import RecommendationStep
from alerts.schemas import Evidence, WarningEvent, WarningOut
from config.timeutil import from_ns

EXCERPT_CHARS = 200
_AFTER = timedelta(microseconds=1)


class Rank(IntEnum):
    """The order of entries at one instant."""

    REPORT = 0
    EVIDENCE = 1
    TRANSITION = 2
    DELIVERY = 3
    RECOMMENDATION = 4


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
    event_time: datetime | None = Field(
        None, description="The readings' clock the change happened at; None for an operator's action"
    )


class DeliveryEntry(BaseModel):
    type: Literal["delivery"] = "delivery"
    at: datetime = Field(description="When the event it tells of was recorded")
    message_id: str = Field(description="The webhook-id header: the same on every attempt")
    subscription_id: str
    event_type: str = Field(description="warning.opened, warning.escalated, ..., recommendation.issued")
    event_id: int | None = Field(description="The history line it tells of (the payload's change.sequence)")
    status: str = Field(description="pending, delivered, failed or cancelled")
    attempts: int
    last_status_code: int | None = Field(description="The endpoint's last answer; None if none came")
    last_attempt_at: datetime | None
    delivered_at: datetime | None


class RecommendationEntry(BaseModel):
    type: Literal["recommendation"] = "recommendation"
    at: datetime
    rid: str
    what: str | None = Field(description="The action; None once it is no longer among the warning's")
    state: str = Field(description="accepted, rejected or done")
    actor: str
    actor_role: str | None
    note: str


TimelineEntry = Annotated[
    ReportEntry | ReadingEntry | ReportBurstEntry | TransitionEntry | DeliveryEntry | RecommendationEntry,
    Field(discriminator="type"),
]
# Entries read whole and merged into the history's pages.
SideEntry = ReportEntry | RecommendationEntry


class TimelinePage(BaseModel):
    warning: WarningOut
    items: list[TimelineEntry]
    total: int
    limit: int
    offset: int


HistoryRow = Evidence | WarningEvent | DeliveryEntry


class History(Protocol):
    """The warning's evidence rows, events and deliveries as one sequence in (time, rank, order stored)."""

    def history_count(self, warning_id: str, *, before: datetime | None = None) -> int: ...

    def history_slice(self, warning_id: str, *, offset: int, limit: int) -> list[HistoryRow]: ...


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


def recommendation_entries(
    steps: Mapping[str, Sequence[RecommendationStep]], recommendations: Sequence[Mapping[str, Any]]
) -> list[RecommendationEntry]:
    """One entry per recommendation step, in time order (steps of one recommendation keep theirs)."""
    what = {r.get("rid"): str(r.get("what", "")) for r in recommendations}
    entries = [
        RecommendationEntry(
            at=step.at,
            rid=rid,
            what=what.get(rid),
            state=step.state,
            actor=step.actor,
            actor_role=step.actor_role,
            note=step.note,
        )
        for rid, history in steps.items()
        for step in history
    ]
    return sorted(entries, key=lambda e: e.at)


def entry_of(row: HistoryRow, units: Mapping[str, str]) -> TimelineEntry:
    if isinstance(row, DeliveryEntry):
        return row
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
    if isinstance(entry, RecommendationEntry):
        return Rank.RECOMMENDATION
    if isinstance(entry, DeliveryEntry):
        return Rank.DELIVERY
    return Rank.TRANSITION if isinstance(entry, TransitionEntry) else Rank.EVIDENCE


def first_report_on_page(reports: Sequence[SideEntry], offset: int, before: Callable[[datetime], int]) -> int:
    """How many of the entries read whole (reports, recommendation steps) come before merged
    position ``offset``.

    Entry ``j`` (in (time, rank) order) sits at merged position ``j + before(cut)``: the history
    rows strictly earlier than a report's time (at one instant reports come first), or than just
    after a step's time (steps come last). That grows with ``j``; so a binary search asks the
    database ``log2(len(reports))`` counts, not one per entry.
    """
    positions = _Positions(reports, before)
    return bisect_left(positions, offset, hi=len(reports))


class _Positions:
    """The merged positions of the reports, computed only where the binary search looks."""

    def __init__(self, reports: Sequence[SideEntry], before: Callable[[datetime], int]) -> None:
        self.reports = reports
        self.before = before

    def __getitem__(self, j: int) -> int:
        entry = self.reports[j]
        # Times are stored to the microsecond, so a microsecond later is after every row at ``at``.
        cut = entry.at + _AFTER if isinstance(entry, RecommendationEntry) else entry.at
        return j + self.before(cut)

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
    steps: Sequence[RecommendationEntry] = (),
) -> TimelinePage:
    """Entries ``offset`` to ``offset + limit`` of the warning's timeline, and how many there are."""
    wid = warning.id
    side: list[SideEntry] = sorted([*reports, *steps], key=lambda e: (e.at, rank_of(e)))
    r0 = first_report_on_page(side, offset, lambda at: history.history_count(wid, before=at))
    rows = history.history_slice(wid, offset=offset - r0, limit=limit)
    entries: list[TimelineEntry] = [entry_of(row, units) for row in rows]
    # Stable: ranks differ between the two lists, and each keeps its own order at equal keys.
    merged = merge(side[r0 : r0 + limit], entries, key=lambda e: (e.at, rank_of(e)))
    items = [e for _, e in zip(range(limit), merged, strict=False)]
    total = history.history_count(wid) + len(side)
    return TimelinePage(warning=warning, items=items, total=total, limit=limit, offset=offset)
