"""Pick the adapter from the store URL in the settings."""

from __future__ import annotations

from store.embedded import EmbeddedStore
from store.influx import InfluxStore
from store.port import TimeSeriesStore


def open_store(url: str) -> TimeSeriesStore:
    if url.startswith("influxdb://"):
        return InfluxStore(url)
    if url.startswith("file://"):
        return EmbeddedStore(url)
    raise ValueError(f"unknown store URL scheme in {url!r}: use influxdb:// or file://")
