"""The silence check: sensors that stopped reporting raise a ``sensor_fault``, and clear it when back.

A silent sensor brings no reading to judge, so this is a periodic task beside
the consumers rather than part of scoring. It is cheap: each round reads one
timestamp per sensor (when its checkpoint was last saved, which happens only
when it brought new data; ``CheckpointRepository.last_saved``), and the full
state only of sensors whose silence begins or ends. It reads the state
database only, never the time-series store, so an InfluxDB outage cannot
make it call sensors silent; a database outage skips rounds and is retried.

Judged against the wall clock: a sensor is silent once nothing of it was
scored for ``SILENCE_FACTOR`` times its expected interval (plus one
checkpoint interval, how late that time is recorded). Only catalogued
sensors (in the file, or registered over the API: ``config.live_catalog``)
that have reported at least once are judged: a sensor just installed is not
missing. A registered sensor deleted while silent is judged no more, and its
open warning is left for an operator to resolve. While our own consumer is
behind (``caught_up`` false), nothing is judged: a stalled pipeline is not a
silent city. Nor is a stopped one: a sensor is called silent only once this
process has also been listening for that long (``listening_since``: since its
start, or the last round that found its consumer behind). So a restart after
an hour down, or a broker back after an hour, does not call every sensor
silent at its first round (the readings of that hour were never received, or
wait in the log); a silence raised before stays raised until its sensor reports.

Which silences were raised is checkpointed (key ``@silence``), so a restart
neither forgets a silence nor raises it again, and the evidence's time is
the moment the sensor became overdue, so two processes raising the same
silence write one row.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from alerts.checkpoints import CheckpointRepository
from alerts.sensor_faults import SensorFaultDesk
from config.catalog import Catalog
from config.live_catalog import CatalogView
from config.timeutil import to_ns
from ingest.errors import is_transient
from models.sensor_health import SILENCE_FACTOR, HealthEvent, overdue

log = logging.getLogger(__name__)

# A silence is called after three missed reports of at least a few minutes each; checking every
# half minute adds little to that, and one query of two columns per sensor costs little.
CHECK_EVERY_S = 30.0
SILENCE_KEY = "@silence"  # '@' cannot start a sensor id, so it never collides


class SilenceWatch:
    def __init__(
        self,
        *,
        catalog: CatalogView,
        checkpoints: CheckpointRepository,
        faults: SensorFaultDesk,
        clock: Callable[[], datetime],
        slack_s: float,
        caught_up: Callable[[], bool] = lambda: True,
        listening_since: datetime | None = None,
        every_s: float = CHECK_EVERY_S,
    ) -> None:
        """``listening_since``: when this process began reading the stream (None: as long as the
        checkpoints go back, which only suits a caller that has been listening all along); each
        round that finds the consumer behind moves it on."""
        self.catalog = catalog
        self.checkpoints = checkpoints
        self.faults = faults
        self.clock = clock
        self.slack_s = slack_s
        self.caught_up = caught_up
        self.listening_since = listening_since
        self.every_s = every_s
        self._raised: dict[str, str] | None = None  # sensor id -> when last seen, as raised

    def run(self, stop: threading.Event) -> None:
        """Check every ``every_s`` until ``stop``; a database outage skips a round, not the task."""
        while not stop.wait(self.every_s):
            try:
                self.check()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._raised = None  # reloaded next round: what was saved is what counts
                log.warning("silence check skipped, state database unavailable: %s", exc)

    def check(self) -> list[HealthEvent]:
        """One round: raise the silences that began, clear those that ended; returns what it applied."""
        now = self.clock()
        if not self.caught_up():
            # Readings may be waiting in the log, or were never taken (the broker down): none of that
            # is a sensor's silence. Listening starts again when the consumer is back.
            self.listening_since = now
            log.info("silence check skipped: the readings consumer is behind")
            return []
        catalog = self.catalog.current()  # the file's sensors and those registered now
        raised = self._load_raised()
        began: dict[str, datetime] = {}
        ended: dict[str, datetime] = {}
        now_s = now.timestamp()
        # Also counted from when this process began listening: its own downtime is no sensor's silence.
        since_s = self.listening_since.timestamp() if self.listening_since is not None else -math.inf
        for sensor_id, seen in self.checkpoints.last_saved().items():
            interval = catalog.expected_interval_s(sensor_id)
            if interval is None:
                continue  # not a catalogued sensor (or silence not watched for it)
            seen_s = seen.timestamp()
            late = overdue(last_seen_s=seen_s, interval_s=interval, now_s=now_s, slack_s=self.slack_s)
            silent = overdue(
                last_seen_s=max(seen_s, since_s), interval_s=interval, now_s=now_s, slack_s=self.slack_s
            )
            if silent and raised.get(sensor_id) != seen.isoformat():
                began[sensor_id] = seen
            elif not late and sensor_id in raised:  # it reported since: only a reading ends a silence
                ended[sensor_id] = seen
        if not began and not ended:
            return []
        states = self.checkpoints.load([*began, *ended])
        events = [self._silent(catalog, sid, seen, states.get(sid)) for sid, seen in sorted(began.items())]
        events += [
            self._back(catalog, sid, seen, states.get(sid))
            for sid, seen in sorted(ended.items())
            if not _engine_fault(states.get(sid))
        ]
        self.faults.apply(events, now=now)
        for sid, seen in began.items():
            raised[sid] = seen.isoformat()
        for sid in ended:
            del raised[sid]
        self.checkpoints.save(
            {SILENCE_KEY: {"detector": "silence", "state": {"raised": raised}, "position": None}}, now=now
        )
        return events

    def _load_raised(self) -> dict[str, str]:
        if self._raised is None:
            saved = self.checkpoints.load([SILENCE_KEY]).get(SILENCE_KEY)
            self._raised = dict(saved["state"].get("raised", {})) if saved else {}
        return self._raised

    def _silent(
        self, catalog: Catalog, sensor_id: str, seen: datetime, saved: dict[str, Any] | None
    ) -> HealthEvent:
        sensor = catalog.sensor(sensor_id)
        assert sensor is not None  # only catalogued sensors have an interval
        interval = catalog.expected_interval_s(sensor_id) or 0.0
        health = _health(saved)
        last_ns, last_value = health.get("last_good_ns"), health.get("last_good_value")
        minutes = SILENCE_FACTOR * interval / 60
        return HealthEvent(
            sensor_id=sensor_id,
            kind=sensor.kind,
            area=sensor.area,
            # When it became overdue: the same for every process and every round that sees it.
            ts_ns=to_ns(seen) + int(SILENCE_FACTOR * interval * 1e9),
            value=float(last_value) if last_value is not None else 0.0,
            fault="silent",
            detail=(
                f"nothing received since {seen.isoformat(timespec='seconds')}, "
                f"over {minutes:g} min ({SILENCE_FACTOR:g} x its {interval:g} s reporting interval)"
            ),
            last_good_ns=int(last_ns) if last_ns is not None else None,
            last_good_value=float(last_value) if last_value is not None else None,
        )

    def _back(
        self, catalog: Catalog, sensor_id: str, seen: datetime, saved: dict[str, Any] | None
    ) -> HealthEvent:
        sensor = catalog.sensor(sensor_id)
        assert sensor is not None
        value = _health(saved).get("last_good_value")
        return HealthEvent(
            sensor_id=sensor_id,
            kind=sensor.kind,
            area=sensor.area,
            ts_ns=to_ns(seen),
            value=float(value) if value is not None else 0.0,
            fault=None,
            detail="reporting again",
        )


def _health(saved: dict[str, Any] | None) -> dict[str, Any]:
    """The health part of a sensor's checkpoint (``models.engine``), or nothing."""
    if saved is None:
        return {}
    health = saved.get("state", {}).get("health")
    return health if isinstance(health, dict) else {}


def _engine_fault(saved: dict[str, Any] | None) -> bool:
    """Whether the sensor is back but still stuck or impossible: then its warning stays open."""
    return _health(saved).get("fault") is not None
