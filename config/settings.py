"""One settings object, built once at start-up and passed down.

Nothing below ``app`` reads the environment: tests build a ``Settings`` with
the values they need instead of patching variables.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CITY_DIR = Path(__file__).parent / "city"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYWARN_", env_nested_delimiter="__")

    # Message bus. An empty bootstrap means "start the embedded Tansu broker".
    kafka_bootstrap: str = ""
    # False when the broker keeps its log in memory only (the embedded Tansu): then an
    # accepted message is queued, not yet durable, until the consumer has stored it.
    broker_durable: bool = True
    topic_readings: str = "citywarn.readings"
    topic_reports: str = "citywarn.reports"
    topic_deadletter: str = "citywarn.deadletter"
    consumer_group: str = "citywarn-ingest"
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    # Kafka's defaults. The embedded Tansu broker delays a group join more the longer
    # max.poll.interval.ms is (measured: 23 s at the default, 3 s at 10 s), so
    # ``citywarn run`` and the tests shorten it.
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    kafka_session_timeout_ms: int = Field(default=45_000, ge=1000)

    # Time-series store: "influxdb://host:port/database" or "file:///path/store.sqlite3".
    store_url: str = "file://./var/store.sqlite3"
    # Warning and delivery state: any SQLAlchemy URL (SQLite or PostgreSQL).
    database_url: str = "sqlite:///./var/state.sqlite3"

    catalog_path: Path = CITY_DIR / "sensors.yaml"
    playbooks_path: Path = CITY_DIR / "playbooks.yaml"
    areas_path: Path = CITY_DIR / "areas.geojson"

    # Ingest batching: how many messages to poll at once, and the longest wait.
    batch_max_messages: int = Field(default=5000, ge=1, le=100_000)
    batch_max_wait_s: float = Field(default=0.5, gt=0, le=30)
    # How often detector state is saved and offsets committed: a crash replays at most this much.
    checkpoint_interval_s: float = Field(default=5.0, gt=0, le=300)
    # Accepted timestamp window around "now"; InfluxDB only stores 1677..2262.
    max_future_skew_s: float = Field(default=300, ge=0)
    max_past_age_s: float = Field(default=30 * 86400, ge=0)

    # Detection.
    detector: str = "recordrarity"
    signal_threshold: float = Field(default=0.9, gt=0, le=1)

    # Per-kind multivariate models: how much history a fit reads, and how often it refits.
    training_history_s: float = Field(default=14 * 86400, gt=0)
    refit_interval_s: float = Field(default=86400, gt=0)

    # Reports.
    taxonomy_path: Path = CITY_DIR / "taxonomy.yaml"
    max_report_text_chars: int = Field(default=2000, ge=1, le=100_000)
    burst_window_s: float = Field(default=600, gt=0, le=86_400)
    # Signals for the same hazard in an area or its neighbours within this time join one warning.
    fusion_window_s: float = Field(default=6 * 3600, gt=0)

    # HTTP ingest bounds.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_batch_items: int = Field(default=10_000, ge=1)

    @field_validator("store_url")
    @classmethod
    def _known_store_scheme(cls, v: str) -> str:
        if not v.startswith(("influxdb://", "file://")):
            raise ValueError("store_url must start with influxdb:// or file://")
        return v
