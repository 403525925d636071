"""Which warning a signal joins: its (hazard, area)'s own open warning, or a recent neighbour's.

A flooded street on a grid border is reported from both sides; one warning
with all the evidence serves the EOC better than two. A neighbour's warning
is joined only while its last signal is within the fusion window.

The same window ends an incident: evidence that comes more than the window
after an open warning's last signal (in event time, so a replay decides the
same) is a new incident, and that warning is over. Signals are therefore
taken in time order and cut at such gaps before they join anything, so the
same signals, in one batch or cut into several in their order, end in the
same warnings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from alerts.repository import WarningWriter
from alerts.schemas import WarningOut
from config.areas import AreaIndex
from config.timeutil import from_ns
from models.signals import Signal

Key = tuple[str, str, bool]  # (hazard, area, exercise): a drill's signals never meet real ones


def by_hazard_and_area(signals: Sequence[Signal]) -> dict[Key, list[Signal]]:
    """Signals per (hazard, area, exercise), each in time order; keys sorted, so concurrent batches
    lock warnings in one order."""
    groups: dict[Key, list[Signal]] = defaultdict(list)
    for s in signals:
        groups[(s.hazard, s.area, s.exercise)].append(s)
    return {key: sorted(group, key=lambda s: s.ts_ns) for key, group in sorted(groups.items())}


def incidents(group: Sequence[Signal], window: timedelta) -> list[list[Signal]]:
    """A time-ordered group cut wherever consecutive signals are more than ``window`` apart."""
    gap = window.total_seconds() * 1e9
    runs: list[list[Signal]] = []
    for s in group:
        if runs and s.ts_ns - runs[-1][-1].ts_ns <= gap:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


@dataclass(frozen=True, slots=True)
class Joining:
    """Where one incident's signals go."""

    warning: WarningOut | None  # the open warning (locked) they join; None: they open their own
    ended: WarningOut | None = None  # their own open warning, quiet for longer than the window: over


class Grouping:
    def __init__(self, areas: AreaIndex | None, window: timedelta) -> None:
        self.areas = areas
        self.window = window

    def warning_for(
        self,
        tx: WarningWriter,
        key: Key,
        run: Sequence[Signal],
        settle: Callable[[WarningOut], WarningOut | None] = lambda w: w,
    ) -> Joining:
        """Where one incident's time-ordered signals go; the warnings read stay locked in ``tx``.

        ``settle`` brings a candidate up to the run's first time (the lifecycle's clock) and says
        whether it is still open (None: it ended before the run, which cannot join it).
        """
        hazard, area, exercise = key
        first = from_ns(run[0].ts_ns)
        own = tx.open_warning(hazard, area, exercise=exercise)
        own = settle(own) if own is not None else None
        ended = None
        if own is not None:
            if first - own.last_signal_at <= self.window:
                return Joining(own)
            ended = own
        if self.areas is None or area not in self.areas:
            return Joining(None, ended)
        neighbours = [(hazard, n) for n in self.areas.neighbours(area)]
        if not neighbours:
            return Joining(None, ended)
        near = tx.latest_open_of(neighbours, since=first - self.window, exercise=exercise)
        return Joining(settle(near) if near is not None else None, ended)
