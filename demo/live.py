"""The demo city after its day: a live stream that keeps every sensor reporting.

The demo replays a day that ends when ``citywarn run --demo`` starts. Were
the sensors to fall quiet after it, every one of them would be silent three
reporting intervals later and the EOC would see 41 ``sensor_fault``
warnings, none of them true. So, once the day is replayed, every sensor
reports on its own cadence (``STEP_S``, its catalog interval) at the current
time, holding the state the day ended in (``demo.city.demo_live_readings``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from config.catalog import Catalog
from demo.city import demo_live_readings
from ingest.keys import keyed_readings, sensor_areas
from ingest.producer import ConfirmedProducer

log = logging.getLogger(__name__)

STEP_S = 300.0  # the demo's cadence, the expected_interval_s of every kind in the bundled catalog


def stream_live(
    producer: ConfirmedProducer,
    *,
    topic: str,
    catalog: Catalog,
    day_end: datetime,
    stop: threading.Event,
    step_s: float = STEP_S,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Send one reading per sensor every ``step_s`` seconds until ``stop``; returns the ticks sent."""
    log.info("demo: the day is replayed; live readings every %g s", step_s)
    tick = 0
    areas = sensor_areas(catalog)
    while not stop.is_set():
        readings = demo_live_readings(clock(), tick=tick, day_end=day_end, catalog=catalog)
        producer.send_all(topic, keyed_readings(readings, areas))
        tick += 1
        stop.wait(step_s)
    return tick
