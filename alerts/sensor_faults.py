"""Sensor faults become warnings of their own: one per sensor, for the maintenance team.

A silent, stuck or impossible sensor (``models.sensor_health``) is not evidence
of the hazard it watches, so its fault never joins that hazard's warnings:
it opens a ``sensor_fault`` warning keyed by the sensor (not by the area, so
two broken gauges in one grid are two jobs), whose recommendations name the
sensor, where it stands and its last good reading. A later fault of the same
sensor joins it while it is open; the sensor's first good reading resolves
it, recorded as a transition by ``sensor-health``, since the fault is over and
nobody has to close it by hand.

Level: blue, or yellow for kinds of ``criticality: high``, whose blind spot
can hide harm within minutes (config/city/sensors.yaml). Certainty:
"Observed" for silence and impossible values, which the data show directly;
"Likely" for a stuck value, which a real, perfectly steady quantity could
also produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from alerts import lifecycle, recommendations
from alerts.repository import WarningRepository, WarningWriter
from alerts.schemas import WarningOut
from config.catalog import SENSOR_FAULT
from config.live_catalog import CatalogView
from config.playbooks import Playbooks
from config.timeutil import as_utc, from_ns
from models.sensor_health import HealthEvent
from models.signals import Signal

ACTOR = "sensor-health"
DETECTOR = "sensorhealth"
# How sure each fault is (CAP certainty and the confidence shown with it).
_CERTAINTY = {"silent": ("Observed", 1.0), "out_of_range": ("Observed", 1.0), "flatline": ("Likely", 0.7)}
_WHAT = {"silent": "has sent nothing", "flatline": "is stuck", "out_of_range": "sends impossible values"}


class SensorFaultDesk:
    """Opens, updates and resolves the ``sensor_fault`` warnings, one per sensor."""

    def __init__(self, repository: WarningRepository, *, catalog: CatalogView, playbooks: Playbooks) -> None:
        self.repository = repository
        self.catalog = catalog
        self.playbooks = playbooks

    # Two processes may judge one sensor at once (the consumer and the silence check): the one whose
    # insert loses the unique open key retries and joins the winner's warning.
    @retry(retry=retry_if_exception_type(sa.exc.IntegrityError), stop=stop_after_attempt(3), reraise=True)
    def apply(self, events: Sequence[HealthEvent], *, now: datetime, actor: str = ACTOR) -> list[str]:
        """Raise or clear faults, in the order given; returns the ids of the warnings touched."""
        if not events:
            return []
        now = as_utc(now)
        touched: list[str] = []
        with self.repository.writing() as tx:
            for event in events:
                if event.fault is not None:
                    found: str | None = self._raise(tx, event, now, actor)
                else:
                    found = self._clear(tx, event, now, actor)
                if found is not None and found not in touched:
                    touched.append(found)
        return touched

    def _raise(self, tx: WarningWriter, e: HealthEvent, now: datetime, actor: str) -> str:
        warning = tx.open_warning(SENSOR_FAULT, e.area, subject=e.sensor_id)
        opened = warning is None
        if warning is None:
            warning = self._open(tx, e, now, actor)
        count = tx.evidence_count(warning.id)
        tx.add_evidence(warning.id, [_evidence(e)])
        if not opened and tx.evidence_count(warning.id) == count:
            return warning.id  # a replay of a fault this warning holds already
        fault = str(e.fault)
        certainty, confidence = _CERTAINTY[fault]
        why = self._explain(e)
        values: dict[str, Any] = {
            "certainty": certainty,
            "confidence": confidence,
            "headline": self._headline(e)[:300],
            "explanation": why,
            "last_signal_at": max(warning.last_signal_at, from_ns(e.ts_ns)),
            "updated_at": now,
            "signal_count": count + 1,
            "recommendations": recommendations.recommend(
                playbooks=self.playbooks,
                hazard=SENSOR_FAULT,
                level=warning.level,
                area=e.area,
                sensors=[e.sensor_id],
                now=now,
                why=why,
                facts=self._facts(e),
                location=self._location(e.sensor_id),
            ),
        }
        tx.update(warning.id, values)
        if not opened:
            note = f"{fault}: {e.detail}"
            tx.record(
                warning.id,
                lifecycle.status_event(
                    warning, warning.status, action="fault", at=now, actor=actor, note=note
                ),
            )
        return warning.id

    def _open(self, tx: WarningWriter, e: HealthEvent, now: datetime, actor: str) -> WarningOut:
        kind = self.catalog.current().kinds.get(e.kind)
        level = "yellow" if kind is not None and kind.criticality == "high" else "blue"
        at = from_ns(e.ts_ns)
        warning = lifecycle.new_warning(SENSOR_FAULT, e.area, level, first=at, last=at, now=now)
        tx.insert(warning, subject=e.sensor_id)
        note = f"{e.sensor_id} {e.fault}: {e.detail}"
        tx.record(warning.id, lifecycle.opened_event(level, at=now, actor=actor, note=note))
        return warning

    def _clear(self, tx: WarningWriter, e: HealthEvent, now: datetime, actor: str) -> str | None:
        warning = tx.open_warning(SENSOR_FAULT, e.area, subject=e.sensor_id)
        if warning is None:
            return None  # an operator closed it already, or it never opened
        tx.add_evidence(warning.id, [_evidence(e)])
        lifecycle.check_transition(warning.id, warning.status, "resolved")
        if not tx.change_status(warning.id, from_status=warning.status, to_status="resolved", now=now):
            return None
        tx.update(warning.id, {"signal_count": tx.evidence_count(warning.id)})
        note = f"{e.detail} at {from_ns(e.ts_ns).isoformat()}"
        tx.record(
            warning.id,
            lifecycle.status_event(warning, "resolved", action="resolved", at=now, actor=actor, note=note),
        )
        return warning.id

    # ---- words --------------------------------------------------------------------------

    def _label(self, sensor_id: str) -> str:
        sensor = self.catalog.current().sensor(sensor_id)
        return f"{sensor_id} ({sensor.name})" if sensor is not None and sensor.name else sensor_id

    def _unit(self, kind: str) -> str:
        k = self.catalog.current().kinds.get(kind)
        return f" {k.unit}" if k is not None else ""

    def _last_good(self, e: HealthEvent) -> str:
        if e.last_good_ns is None or e.last_good_value is None:
            return "none received"
        at = from_ns(e.last_good_ns).isoformat(timespec="seconds")
        return f"{e.last_good_value:g}{self._unit(e.kind)} at {at}"

    def _headline(self, e: HealthEvent) -> str:
        return f"Sensor fault: {self._label(e.sensor_id)} in {e.area} {_WHAT[str(e.fault)]}"

    def _explain(self, e: HealthEvent) -> str:
        kind = self.catalog.current().kinds.get(e.kind)
        watches = f", which watches {kind.hazard}" if kind is not None else ""
        return (
            f"{e.kind} sensor {self._label(e.sensor_id)} in {e.area}{watches}, "
            f"{_WHAT[str(e.fault)]}: {e.detail}. Last good reading: {self._last_good(e)}. "
            f"Until it is fixed its readings are missing from {e.area}'s picture; "
            "this warning is about the sensor, not the hazard."
        )

    def _facts(self, e: HealthEvent) -> dict[str, str]:
        location = self._location(e.sensor_id)
        if location is None:
            place = e.area
        else:
            name = f"{location['name']}, " if location["name"] else ""
            place = f"{name}{e.area} ({location['lat']:.6f}, {location['lon']:.6f})"
        return {"sensor": e.sensor_id, "place": place, "last_good": self._last_good(e)}

    def _location(self, sensor_id: str) -> dict[str, Any] | None:
        sensor = self.catalog.current().sensor(sensor_id)
        if sensor is None:
            return None
        return {"sensor_id": sensor.id, "name": sensor.name, "lat": sensor.lat, "lon": sensor.lon}


def _evidence(e: HealthEvent) -> Signal:
    details: dict[str, float | str] = {"fault": e.fault or "recovered", "detail": e.detail}
    if e.last_good_ns is not None and e.last_good_value is not None:
        details["last_good_at"] = from_ns(e.last_good_ns).isoformat()
        details["last_good_value"] = e.last_good_value
    return Signal(
        sensor_id=e.sensor_id,
        kind=e.kind,
        area=e.area,
        hazard=SENSOR_FAULT,
        ts_ns=e.ts_ns,
        value=e.value,
        score=1.0 if e.fault else 0.0,
        detector=DETECTOR,
        evidence=details,
    )
