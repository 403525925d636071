"""The sensors the service knows right now: the catalog file plus the sensors registered over the API.

Everything that asks "is this a known sensor, of which kind, with which
warning lines and reporting interval" asks a ``CatalogView`` for its
``current()`` catalog. A file ``Catalog`` is a view that never changes; a
``LiveCatalog`` merges the registered sensors into it and keeps up with them
without a query per reading:

- in the process that changed the registry, ``refresh()`` after the change
  makes it visible to the very next request;
- any other process notices within ``poll_s``: ``current()`` reads the
  registry's revision (one small query) at most that often, and the
  registered rows only when the revision moved;
- ``refresh()`` also checks at once, for a reading of a sensor the snapshot
  does not know (``ingest.validation``), so a reading produced after its
  sensor was registered elsewhere is not refused for want of a poll.

Where the file and the registry disagree (the file was changed after a
registration, and the service restarted), the file wins: a registered sensor
whose id the file now holds, or whose kind or interval the file's kinds no
longer allow, is left out and logged, rather than stopping ingest.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from config.catalog import Catalog, Sensor, sensor_kind_problems

log = logging.getLogger(__name__)

POLL_S = 1.0


class CatalogView(Protocol):
    def current(self) -> Catalog:
        """The catalog as it stands: cheap enough to ask per reading."""
        ...

    def refresh(self) -> Catalog:
        """The catalog after looking for changes now."""
        ...


class RegisteredSensors(Protocol):
    """Where registered sensors are kept (``store.sensor_registry.SensorRegistry``)."""

    def revision(self) -> int:
        """A number that grows with every change: equal numbers, same sensors."""
        ...

    def active(self) -> list[Sensor]: ...


class LiveCatalog:
    def __init__(
        self,
        file: Catalog,
        *,
        source: RegisteredSensors,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.file = file
        self.source = source
        self.poll_s = poll_s
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot = file
        self._revision: int | None = None
        self._next_poll = -math.inf
        self.refresh()

    def current(self) -> Catalog:
        # Another thread polling already: this one goes on with the snapshot it has.
        if self._clock() >= self._next_poll and self._lock.acquire(blocking=False):
            try:
                self._poll()
            finally:
                self._lock.release()
        return self._snapshot

    def refresh(self) -> Catalog:
        with self._lock:
            self._poll()
        return self._snapshot

    def _poll(self) -> None:
        self._next_poll = self._clock() + self.poll_s
        try:
            # The revision first: a change landing between the two reads is read again next time.
            revision = self.source.revision()
            if revision == self._revision:
                return
            snapshot = merged(self.file, self.source.active())
        except Exception:
            # Ingest goes on with the sensors it knows; the next poll tries again.
            log.warning(
                "registered sensors not read; keeping those of revision %s", self._revision, exc_info=True
            )
            return
        self._snapshot = snapshot
        self._revision = revision


def merged(file: Catalog, registered: Sequence[Sensor]) -> Catalog:
    """The file's sensors, then the registered ones the file's kinds allow (see the module docstring)."""
    taken = {s.id for s in file.sensors}
    kept: list[Sensor] = []
    for sensor in registered:
        if sensor.id in taken:
            log.warning("registered sensor %s left out: the catalog file has a sensor of that id", sensor.id)
        elif problems := sensor_kind_problems(file.kinds, sensor):
            log.warning("registered sensor %s left out: %s", sensor.id, "; ".join(m for _, m in problems))
        else:
            kept.append(sensor)
            taken.add(sensor.id)
    if not kept:
        return file
    return Catalog(kinds=file.kinds, sensors=[*file.sensors, *kept])
