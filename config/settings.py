"""One settings object, built once at start-up and passed down.

Nothing below ``app`` reads the environment: tests build a ``Settings`` with
the values they need instead of patching variables. Every field carries a
description: ``python -m config.settings_doc`` turns them into the README's
table, so the documentation is generated from the one place that is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import limits
import limits.storage
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CITY_DIR = Path(__file__).parent / "city"
ENV_PREFIX = "CITYWARN_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__")

    # --- message bus
    kafka_bootstrap: str = Field(
        default="",
        description="Kafka bootstrap servers, comma-separated. Empty: `citywarn run` starts the "
        "embedded Tansu broker.",
    )
    broker_durable: bool = Field(
        default=True,
        description="False when the broker keeps its log in memory only (the embedded Tansu): an "
        "accepted message is then queued, not yet durable, until the consumer has stored it.",
    )
    topic_readings: str = Field(default="citywarn.readings", description="Topic of sensor readings.")
    topic_reports: str = Field(default="citywarn.reports", description="Topic of human reports.")
    topic_deadletter: str = Field(
        default="citywarn.deadletter", description="Topic for refused messages, with the reason."
    )
    consumer_group: str = Field(
        default="citywarn-ingest", description="Consumer group of the ingest workers."
    )
    topic_partitions: int = Field(default=6, ge=1, description="Partitions of topics citywarn creates.")
    topic_replication: int = Field(
        default=1, ge=1, description="Replication factor of topics citywarn creates."
    )
    # The embedded Tansu broker delays a group join more the longer max.poll.interval.ms is
    # (measured: 23 s at the default, 3 s at 10 s), so ``citywarn run`` and the tests shorten it.
    kafka_max_poll_interval_ms: int = Field(
        default=300_000,
        ge=1000,
        description="Kafka max.poll.interval.ms (Kafka's default; `citywarn run` uses 10 s on Tansu).",
    )
    kafka_session_timeout_ms: int = Field(
        default=45_000,
        ge=1000,
        description="Kafka session.timeout.ms (Kafka's default; `citywarn run` uses 6 s on Tansu).",
    )

    # --- where data lives
    store_url: str = Field(
        default="file://./var/store.sqlite3",
        description="Time-series store: `influxdb://host:port/database` or `file://PATH` (embedded SQLite).",
    )
    database_url: str = Field(
        default="sqlite:///./var/state.sqlite3",
        description="State database (warnings, checkpoints, reports, trained models): any SQLAlchemy URL, "
        "SQLite or PostgreSQL.",
    )

    # --- the city's own files
    catalog_path: Path = Field(
        default=CITY_DIR / "sensors.yaml", description="Sensor catalog: kinds, warning lines, sensors."
    )
    playbooks_path: Path = Field(
        default=CITY_DIR / "playbooks.yaml", description="Control actions per hazard and warning level."
    )
    assets_path: Path | None = Field(
        default=None,
        description="Asset register (pumps, shelters, valves ...) that recommendations name. Unset: the "
        "bundled register with the bundled areas file, and none with a city's own areas (the bundled "
        "assets lie in the bundled city).",
    )
    areas_path: Path = Field(
        default=CITY_DIR / "areas.geojson", description="Districts and community grids (GeoJSON)."
    )
    taxonomy_path: Path = Field(
        default=CITY_DIR / "taxonomy.yaml",
        description="Report categories, the hazards they are evidence for, keywords and prior rates.",
    )
    lifecycle_path: Path = Field(
        default=CITY_DIR / "lifecycle.yaml",
        description="Per hazard: how long a condition holds before a warning is active, and stays below "
        "its line before it steps down or resolves (event time); flapping; the escalation chain.",
    )

    # --- ingest
    # A batch pays a fixed cost per series in it (the detector's and the model's calls, the decision
    # step, health), so under a backlog its cost per reading falls with the readings it holds per
    # series: bench.scoring's engine, 5,000 gas series 300 points old, took 8.7 µs a reading at 4 a
    # series and 6.5 at 10 (2026-12-04). What bounds it is time: a batch is handled between two polls
    # and before the next checkpoint, so it should stay about a second of a worker's CPU, well inside
    # the 5 s checkpoint interval and the 10 s max.poll.interval `citywarn run` uses on Tansu. At the
    # 18 to 21 µs a reading bench.pipeline's workers spend, that is 50,000. Against 20,000 there, in
    # alternated runs, a worker spent 8 to 15 % less CPU a reading alone and 3 to 10 % less beside
    # another. A steady flow fills its batches by batch_max_wait_s long before this.
    batch_max_messages: int = Field(
        default=50_000, ge=1, le=100_000, description="Most messages polled as one batch."
    )
    # A reading waits up to this long in the consumer before its batch is scored: on Tansu at 5,000
    # readings/s a bare consumer saw produce-to-poll p50 0.40 s and p99 0.72 s at 0.5 s, p50 0.07 s and
    # p99 0.13 s at 0.1 s (with fetch.wait.max.ms 50, ingest.kafka). Under load batches fill first.
    # The wait runs from the end of the last poll, so a batch handled for longer is followed at once.
    batch_max_wait_s: float = Field(
        default=0.1,
        gt=0,
        le=30,
        description="Longest wait to fill a batch, counted from the end of the last poll.",
    )
    checkpoint_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often detector state is saved and offsets committed: a crash replays at most "
        "this much. A worker that has read all there is saves at once (at most once a second).",
    )
    max_future_skew_s: float = Field(
        default=300, ge=0, description="Newest accepted timestamp, ahead of now (InfluxDB stores 1677..2262)."
    )
    max_past_age_s: float = Field(
        default=30 * 86400, ge=0, description="Oldest accepted timestamp, before now."
    )

    # --- detection
    detector: str = Field(default="recordensemble", description="Per-series detector, by registry name.")
    signal_threshold: float = Field(
        default=0.66,
        gt=0,
        le=1,
        description="Detector score from which a reading becomes a signal. 0.66 is evidence 8 % past "
        "the series' own recent record (0.63 is equal to it); chosen by leave-one-category-out "
        "cross-validation on NAB (README, Detection).",
    )
    training_history_s: float = Field(
        default=14 * 86400, gt=0, description="History a per-kind model fit reads."
    )
    refit_interval_s: float = Field(
        default=86400, gt=0, description="How often the per-kind models are refitted."
    )
    model_poll_s: float = Field(
        default=60,
        gt=0,
        description="How often the model archive is checked for fits saved by another process "
        "(`citywarn train`); a new fit is scored with within this time.",
    )

    # --- reports and fusion
    max_report_text_chars: int = Field(
        default=2000, ge=1, le=100_000, description="Longest accepted report text."
    )
    burst_window_s: float = Field(
        default=600, gt=0, le=86_400, description="Window of the report-burst test per (area, category)."
    )
    fusion_window_s: float = Field(
        default=6 * 3600,
        gt=0,
        description="Signals for one hazard in an area or its neighbours within this time join one "
        "warning; evidence later than this after a warning's last signal resolves it and opens a new one.",
    )
    mute_sweep_s: float = Field(
        default=10,
        gt=0,
        le=3600,
        description="How often open warnings muted by a silence or an inhibiting warning are checked: one "
        "whose silence has ended (or whose cause has closed) is unmuted then, and that is its notification.",
    )

    # --- CAP 1.2 export
    cap_sender: str = Field(
        default="citywarn@city.example",
        min_length=1,
        max_length=255,
        pattern=r"^[^\s,<&]+$",
        description="The CAP `sender` of every CAP message: this EOC's identifier, unique among senders "
        "(CAP suggests an Internet domain or mailbox); no spaces, commas, `<` or `&`.",
    )

    # --- webhooks (alerts.delivery)
    webhook_allow_private: bool = Field(
        default=False,
        description="Let subscriptions target hosts that resolve to loopback, private, link-local or "
        "cloud-metadata addresses. Off, such a URL is refused when created and again before every "
        "attempt; on only for tests, the demo, or integrators inside the EOC's own network.",
    )
    webhook_retry_schedule: list[float] = Field(
        default=[0, 5, 300, 1800, 7200, 18000, 36000, 36000],
        min_length=1,
        max_length=50,
        description="Seconds before each attempt of a delivery, the first counted from the event (JSON "
        "list, e.g. `[0, 5, 300]`); each wait but the first is stretched or shrunk by up to a fifth at "
        "random, so endpoints coming back are not hit by every worker at once. After the last, the "
        "delivery fails (and can be retried by hand). The default spans about 28 hours.",
    )
    webhook_timeout_s: float = Field(
        default=10, gt=0, le=120, description="How long one attempt may take: connecting, sending, answering."
    )
    webhook_disable_after_failures: int = Field(
        default=10,
        ge=1,
        description="An endpoint is disabled (and the operators told) after this many failed attempts "
        "in a row, if it has also been failing for webhook_disable_after_s. A 410 Gone disables at once.",
    )
    webhook_disable_after_s: float = Field(
        default=86_400,
        ge=0,
        description="How long an endpoint must have been failing, without one 2xx, before it is "
        "disabled: an hour's outage loses nothing and disables nothing.",
    )
    webhook_secret_grace_s: float = Field(
        default=86_400,
        ge=0,
        le=30 * 86_400,
        description="After a signing secret is rotated, how long the old one still signs too (both "
        "signatures are sent), so an integrator can deploy the new secret without missing a delivery.",
    )
    webhook_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Deliveries one worker attempts at once; at most a quarter of them (at least one) "
        "for one subscription, so an endpoint that hangs delays only its own events.",
    )
    webhook_poll_s: float = Field(
        default=0.5, gt=0, le=60, description="How often an idle delivery worker looks for due deliveries."
    )

    # --- HTTP ingest bounds
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body; 413 beyond."
    )
    max_batch_items: int = Field(default=10_000, ge=1, description="Most items in one POSTed batch.")
    max_json_depth: int = Field(
        default=32,
        ge=4,
        le=512,
        description="Deepest nesting of arrays and objects in a JSON body; 422 naming the field beyond "
        "(checked on the raw bytes, before parsing).",
    )
    max_json_number_chars: int = Field(
        default=100,
        ge=24,
        le=4000,
        description="Longest number literal in a JSON body, in characters; 422 naming the field beyond "
        "(Python cannot read integers past 4,300 digits, and reads long ones slowly).",
    )

    # --- access
    api_docs: bool = Field(
        default=True,
        description="Serve the API's documentation (`/docs`, `/redoc`) and its OpenAPI document "
        "(`/openapi.json`) without a key. False: none of the three is served.",
    )
    demo_key_file: Path = Field(
        default=Path("citywarn-demo.key"),
        description="Where `citywarn run --demo` writes the admin key it makes (mode 0600; relative "
        "to the working directory).",
    )
    auth_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="Seconds an API process trusts a key it has admitted without asking the database "
        "again: the longest a key revoked by another process (`citywarn keys revoke`, another API "
        "process) is still accepted here. A revocation through this process's API, and expiry, take "
        "effect at once. 0: every request asks the database.",
    )
    store_reads_in_flight: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Time-series store reads (`GET /v1/sensors/{id}/series`) an API process runs at "
        "once; more wait their turn. Each holds the GIL for its Python part, and eight at once starved "
        "the event loop that answers every other request (the README's `bench.api` section).",
    )
    stream_max_s: float = Field(
        default=3600.0,
        gt=0,
        le=86_400,
        description="Seconds a `GET /v1/stream` connection lasts before the service ends it with a "
        "comment; the client reconnects with its Last-Event-ID and misses nothing. Bounds how long one "
        "connection stays pinned to one API process behind a load balancer.",
    )

    # --- logs
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text`: one readable line per record. `json`: one JSON object per line (time in "
        "RFC 3339 UTC, level, logger, message, a traceback as one string, and any extra fields), for a "
        "log shipper.",
    )

    access_log: bool = Field(
        default=False,
        description="One log line per HTTP request (uvicorn's access log). Off by default: at a "
        "thousand requests a second it was about 15 % of the API's event loop, and `/metrics` counts "
        "requests by route, status and latency while the audit log records every change.",
    )

    # --- rate limits (`limits` notation: "20/second; 600/minute", every limit in it applies)
    rate_limits_enabled: bool = Field(
        default=True,
        description="Answer 429 past the rate limits below. False only behind a gateway that limits "
        "clients itself, or for a bulk load through the API.",
    )
    rate_limit_ingest: str = Field(
        default="20/second; 600/minute",
        description="Per ingest key (one per gateway), for POST /v1/readings and /v1/reports. A batch "
        "holds up to max_batch_items readings, so a batching gateway needs a few requests a minute; "
        "this also lets one post each reading of a few hundred sensors on its own, and drain a backlog "
        "after an outage at 20 batches a second.",
    )
    rate_limit_api: str = Field(
        default="30/second; 900/minute",
        description="Per key, for every other secured route (reads, acknowledgements, keys), counted "
        "apart from ingest so a flood of readings never uses up an operator's allowance: a console "
        "polling ten views every few seconds, a page load's burst of 30, a few consoles sharing a key.",
    )
    rate_limit_anonymous: str = Field(
        default="60/minute",
        description="Per client address, for failed authentications (no key, or a refused one); a "
        "valid key is never counted here. A console left with an expired key still hears why (401) "
        "for a minute of polling; a script guessing keys is slowed to one a second. Behind a reverse "
        "proxy, run uvicorn with --forwarded-allow-ips so the address is the client's, not the proxy's.",
    )
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="Where the counts live. `memory://`: in this process, so each API process has its "
        "own allowance. A Redis URI (`redis://host:6379/0`, needs the `redis` extra) shares one "
        "allowance per key among every process using it. If it cannot be reached, requests pass "
        "unlimited and a warning is logged.",
    )

    @field_validator("rate_limit_ingest", "rate_limit_api", "rate_limit_anonymous")
    @classmethod
    def _rate_limit(cls, v: str) -> str:
        try:
            items = limits.parse_many(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a rate limit; write it as '20/second; 600/minute'") from None
        if any(item.amount < 1 for item in items):
            raise ValueError(f"every limit in {v!r} must allow at least 1 request")
        return v

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _moving_window_storage(cls, v: str) -> str:
        scheme = urlsplit(v).scheme
        storage = None if scheme.startswith("async+") else limits.storage.SCHEMES.get(scheme)
        if storage is None:
            raise ValueError(f"{v!r} is not a storage for rate limits; use memory:// or redis://host:port")
        if not hasattr(storage, "acquire_entry"):
            raise ValueError(f"{v!r} cannot keep a moving window; use memory:// or redis://host:port")
        return v

    @field_validator("store_url")
    @classmethod
    def _known_store_scheme(cls, v: str) -> str:
        if not v.startswith(("influxdb://", "file://")):
            raise ValueError("store_url must start with influxdb:// or file://")
        return v

    def asset_register(self) -> Path | None:
        """The asset register to load, if any (see ``assets_path``)."""
        if self.assets_path is not None:
            return self.assets_path
        return CITY_DIR / "assets.yaml" if self.areas_path == CITY_DIR / "areas.geojson" else None


def env_var(field: str) -> str:
    """The environment variable that sets a field."""
    return f"{ENV_PREFIX}{field.upper()}"
