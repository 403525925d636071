"""Replay recorded (or generated) messages into a topic, faster than real time.

Messages go out in time order, one time step at a time, so detectors see the
day unfold in order and warnings appear as the scenario builds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from itertools import groupby
from typing import Any

from ingest.producer import ConfirmedProducer

log = logging.getLogger(__name__)


def _steps(messages: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for _, step in groupby(messages, key=lambda m: m["ts"]):
        yield list(step)


def replay(
    producer: ConfirmedProducer,
    topic: str,
    messages: Iterable[dict[str, Any]],
    *,
    steps_per_s: float,
    stop: threading.Event,
    key_field: str = "sensor_id",
) -> int:
    """Produce messages step by step at ``steps_per_s``; returns how many were sent."""
    sent = 0
    for step in _steps(messages):
        if stop.is_set():
            break
        sent += producer.send_all(
            topic,
            ((str(m.get(key_field, "")).encode(), json.dumps(m).encode(), None) for m in step),
        )
        stop.wait(1.0 / steps_per_s)
    log.info("replayed %d messages to %s", sent, topic)
    return sent
