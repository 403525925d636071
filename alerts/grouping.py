"""Which warning a signal joins: its (hazard, area)'s own open warning, or a recent neighbour's.

A flooded street on a grid border is reported from both sides; one warning
with all the evidence serves the EOC better than two. A neighbour's warning
is joined only while its last signal is within the fusion window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from alerts.repository import WarningWriter
from alerts.schemas import WarningOut
from config.areas import AreaIndex
from config.timeutil import from_ns
from models.signals import Signal

Key = tuple[str, str]


def by_hazard_and_area(signals: Sequence[Signal]) -> dict[Key, list[Signal]]:
    """Signals per (hazard, area), in key order, so concurrent batches lock warnings in one order."""
    groups: dict[Key, list[Signal]] = defaultdict(list)
    for s in signals:
        groups[(s.hazard, s.area)].append(s)
    return dict(sorted(groups.items()))


class Grouping:
    def __init__(self, areas: AreaIndex | None, window: timedelta) -> None:
        self.areas = areas
        self.window = window

    def warning_for(self, tx: WarningWriter, key: Key, group: Sequence[Signal]) -> WarningOut | None:
        """The open warning (locked in ``tx``) these signals join, or None: they open their own."""
        hazard, area = key
        own = tx.open_warning(hazard, area)
        if own is not None or self.areas is None or area not in self.areas:
            return own
        neighbours = [(hazard, n) for n in self.areas.neighbours(area)]
        if not neighbours:
            return None
        since = from_ns(min(s.ts_ns for s in group)) - self.window
        return tx.latest_open_of(neighbours, since=since)
