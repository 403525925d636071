"""Replay recorded (or generated) messages into their topics, faster than real time.

Messages go out in time order at ``speed`` simulated seconds per wall-clock
second, so detectors see the day unfold in order and warnings appear as the
scenario builds; readings and reports keep their relative timing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest.keys import reading_area
from ingest.producer import ConfirmedProducer

log = logging.getLogger(__name__)

TICK_S = 0.1  # wall-clock seconds between sends


@dataclass(frozen=True, slots=True)
class Recorded:
    topic: str
    key: str
    message: dict[str, Any]

    @classmethod
    def reading(cls, topic: str, message: dict[str, Any], areas: Mapping[str, str]) -> Recorded:
        """A reading keyed as every producer keys it: its sensor's area (``ingest.keys``)."""
        return cls(topic, reading_area(message, areas), message)

    @classmethod
    def report(cls, topic: str, message: dict[str, Any]) -> Recorded:
        return cls(topic, str(message["area"]), message)

    @property
    def ts(self) -> float:
        return datetime.fromisoformat(str(self.message["ts"]).replace("Z", "+00:00")).timestamp()


def replay(
    producer: ConfirmedProducer, events: Iterable[Recorded], *, speed: float, stop: threading.Event
) -> int:
    """Produce events in time order, ``speed`` simulated seconds per second; returns how many."""
    ordered = sorted(events, key=lambda e: e.ts)
    if not ordered:
        return 0
    sent = 0
    i = 0
    clock = ordered[0].ts
    while i < len(ordered) and not stop.is_set():
        clock += speed * TICK_S
        due: dict[str, list[Recorded]] = {}
        while i < len(ordered) and ordered[i].ts <= clock:
            due.setdefault(ordered[i].topic, []).append(ordered[i])
            i += 1
        for topic, batch in due.items():
            sent += producer.send_all(
                topic, ((e.key.encode(), json.dumps(e.message).encode(), None) for e in batch)
            )
        stop.wait(TICK_S)
    log.info("replayed %d messages", sent)
    return sent
