"""Drills: a named scenario replayed through detectors of its own into the live warning service, as
an exercise.

A scenario gives readings and reports (``DrillScenario``; the registry names the ones a service
offers). A drill scores the readings with its own scoring engine and finds the reports' bursts
with its own burst detector, both built for it and dropped after it, so no live detector state or
checkpoint is read or changed; its readings and reports are never written to the time-series
store, the report store or the Kafka topics. Only its signals leave it: marked ``exercise`` with
the drill's id, they go to the live ``WarningService``, which keeps exercise warnings apart from
real ones (they never join, raise or end a real warning).

The scenario is taken in event-time steps (``step_s`` of scenario time at once: readings, then the
reports of the same span). ``speed`` paces the steps against the wall clock (scenario seconds per
second); without it the drill runs as fast as it can. The warning lifecycle runs on event time, so
the pace changes when transitions happen on the wall clock, not which ones happen.

Sensor faults the drill's engine notices are dropped: a sensor_fault warning is the maintenance
team's, and a drill has no sensors to repair.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from alerts.drill_store import AlreadyRunning, Drill, DrillStore
from alerts.service import WarningService
from alerts.sinks import burst_signal, latest_per_area
from models.signals import Signal
from store.schemas import Point, ReportRecord

if TYPE_CHECKING:
    from models.report_burst import ReportBurstDetector

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Scorer(Protocol):
    """What a drill needs of a scoring engine (``models.engine.ScoringEngine``)."""

    def score(self, observations: Sequence[Point]) -> list[Signal]: ...

    def take_health_events(self) -> Sequence[object]: ...


@dataclass(frozen=True, slots=True)
class ScenarioData:
    """A scenario's readings and reports, each in time order."""

    readings: list[Point]
    reports: list[ReportRecord]


@dataclass(frozen=True, slots=True)
class DrillScenario:
    name: str
    description: str
    build: Callable[[datetime], ScenarioData]  # given the time the drill starts


class ScenarioRegistry:
    """The scenarios a service offers, by name."""

    def __init__(self, scenarios: Sequence[DrillScenario] = ()) -> None:
        self._scenarios = {s.name: s for s in scenarios}

    def register(self, scenario: DrillScenario) -> None:
        self._scenarios[scenario.name] = scenario

    def get(self, name: str) -> DrillScenario | None:
        return self._scenarios.get(name)

    def names(self) -> list[str]:
        return sorted(self._scenarios)


class UnknownScenario(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no scenario {name!r}; known: {', '.join(known)}")
        self.known = known


@dataclass(frozen=True, slots=True)
class DrillTools:
    """A drill's own detectors, made fresh for each drill."""

    scorer: Scorer
    bursts: ReportBurstDetector


def steps(data: ScenarioData, step_s: float) -> Iterator[tuple[float, list[Point], list[ReportRecord]]]:
    """The scenario in spans of ``step_s`` event seconds: (span end in epoch seconds, readings, reports)."""
    times = [p.ts_ns for p in data.readings] + [r.ts_ns for r in data.reports]
    if not times:
        return
    start = min(times) / 1e9
    step_ns = int(step_s * 1e9)
    start_ns = int(start * 1e9)

    def span(ts_ns: int) -> int:
        return (ts_ns - start_ns) // step_ns

    last = span(max(times))
    i = j = 0
    readings, reports = data.readings, data.reports
    for k in range(last + 1):
        a = i
        while i < len(readings) and span(readings[i].ts_ns) <= k:
            i += 1
        b = j
        while j < len(reports) and span(reports[j].ts_ns) <= k:
            j += 1
        yield start + (k + 1) * step_s, readings[a:i], reports[b:j]


class DrillRunner:
    """Starts, stops and records drills, each in a thread of its own; ``close`` stops them all.

    Drills the store still lists as running when the runner is made were cut short by a stop or a
    crash of the service: they are marked interrupted.
    """

    def __init__(
        self,
        *,
        store: DrillStore,
        scenarios: ScenarioRegistry,
        warnings: WarningService,
        tools: Callable[[], DrillTools],
        clock: Clock = lambda: datetime.now(UTC),
        step_s: float = 3600.0,
    ) -> None:
        self.store = store
        self.scenarios = scenarios
        self.warnings = warnings
        self._tools = tools
        self._clock = clock
        self._step_s = step_s
        self._running: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.Lock()
        store.interrupt_running(now=clock())

    def start(self, scenario: str, *, speed: float | None, note: str, requested_by: str) -> Drill:
        """Start a drill of the scenario. ``UnknownScenario``; ``AlreadyRunning`` if one of it runs."""
        found = self.scenarios.get(scenario)
        if found is None:
            raise UnknownScenario(scenario, self.scenarios.names())
        drill = self.store.start(
            scenario, speed=speed, note=note, requested_by=requested_by, now=self._clock()
        )
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(drill, found, stop), name=f"drill-{drill.id[:8]}", daemon=True
        )
        with self._lock:
            self._running[drill.id] = (thread, stop)
        thread.start()
        return drill

    def stop(self, drill_id: str, *, timeout_s: float = 30.0) -> Drill | None:
        """Stop a running drill (it finishes the step in hand); the drill as it ended, None if unknown."""
        with self._lock:
            running = self._running.get(drill_id)
        if running is not None:
            thread, stop = running
            stop.set()
            thread.join(timeout_s)
        return self.store.end(drill_id, "stopped", now=self._clock())

    def wait(self, drill_id: str, timeout_s: float) -> bool:
        """Wait for a drill's thread to end; True if it has (or was not running here)."""
        with self._lock:
            running = self._running.get(drill_id)
        if running is not None:
            running[0].join(timeout_s)
            return not running[0].is_alive()
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop every drill as the service stops: they end interrupted."""
        with self._lock:
            running = list(self._running.items())
        for _, (_, stop) in running:
            stop.set()
        for drill_id, (thread, _) in running:
            thread.join(timeout_s)
            self.store.end(drill_id, "interrupted", now=self._clock())

    def _run(self, drill: Drill, scenario: DrillScenario, stop: threading.Event) -> None:
        try:
            ended = self._replay(drill, scenario, stop)
            if not stop.is_set():
                self.store.end(drill.id, "finished" if ended else "stopped", now=self._clock())
        except Exception as exc:
            log.exception("drill %s (%s) failed", drill.id, scenario.name)
            self.store.end(drill.id, "failed", now=self._clock(), error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running.pop(drill.id, None)

    def _replay(self, drill: Drill, scenario: DrillScenario, stop: threading.Event) -> bool:
        """Feed the scenario step by step; True if it got to the end."""
        data = scenario.build(self._clock())
        tools = self._tools()
        actor = f"drill:{drill.id}"
        began, first = time.monotonic(), None
        for span_end, readings, reports in steps(data, self._step_s):
            if stop.is_set():
                return False
            if drill.speed is not None:
                first = span_end - self._step_s if first is None else first
                if stop.wait(max(0.0, (span_end - first) / drill.speed - (time.monotonic() - began))):
                    return False
            signals = tools.scorer.score(readings)
            tools.scorer.take_health_events()  # a drill's sensor faults are no one's to repair
            bursts = tools.bursts.observe_batch(
                [(r.area, r.category, r.ts_ns / 1e9, r.report_id) for r in reports if not r.outside_areas]
            )
            by_id = {r.report_id: r for r in reports}
            signals += [burst_signal(b, by_id) for b in bursts if b.hazard != "other"]
            marked = [dataclasses.replace(s, exercise=True, drill_id=drill.id) for s in signals]
            touched = self.warnings.apply_signals(marked, now=self._clock(), actor=actor) if marked else []
            # The drill's own clock moves its warnings on (hold, release), as stored batches do live.
            clock = latest_per_area(
                [(p.area, p.ts_ns) for p in readings]
                + [(r.area, r.ts_ns) for r in reports if not r.outside_areas]
            )
            self.warnings.advance(clock, now=self._clock(), exercise=True)
            self.store.progress(
                drill.id,
                readings=len(readings),
                reports=len(reports),
                signals=len(marked),
                warning_ids=touched,
            )
        return True


__all__ = [
    "AlreadyRunning",
    "DrillRunner",
    "DrillScenario",
    "DrillTools",
    "ScenarioData",
    "ScenarioRegistry",
    "UnknownScenario",
    "steps",
]
