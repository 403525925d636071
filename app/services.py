"""Everything the API and the workers share, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from alerts import db
from alerts.checkpoints import CheckpointRepository
from alerts.migrations import upgrade_to_head
from alerts.mutes import SilencesAndInhibition
from alerts.outbox import Outbox
from alerts.repository import SqlWarningRepository
from alerts.rollup import RollUp
from alerts.service import WarningService
from alerts.silence_store import SilenceStore
from app.preflight import checked_catalog
from config.areas import AreaIndex, load_areas
from config.assets import AssetRegister, load_assets
from config.catalog import Catalog, load_catalog, registration_problems
from config.lifecycle import load_lifecycle
from config.live_catalog import LiveCatalog
from config.playbooks import Playbooks, load_playbooks
from config.settings import Settings
from config.taxonomy import Taxonomy, load_taxonomy
from ingest.kafka import producer_config
from ingest.keys import AreaPartitioner
from ingest.producer import ConfirmedProducer
from ingest.report_validation import ReportValidator
from ingest.validation import ReadingValidator
from store.factory import open_store
from store.model_repository import ModelRepository
from store.port import TimeSeriesStore
from store.reports import ReportRepository
from store.sensor_registry import SensorRegistry


@dataclass
class Services:
    settings: Settings
    # The catalog file as loaded: its kinds, and the sensors only the file defines.
    catalog: Catalog
    # The sensors known now: the file's and those registered over the API (``config.live_catalog``).
    live_catalog: LiveCatalog
    registry: SensorRegistry
    areas: AreaIndex
    playbooks: Playbooks
    assets: AssetRegister
    store: TimeSeriesStore
    engine: sa.Engine
    warnings: WarningService
    checkpoints: CheckpointRepository
    validator: ReadingValidator
    taxonomy: Taxonomy
    reports: ReportRepository
    models: ModelRepository
    report_validator: ReportValidator
    producer: ConfirmedProducer
    # Silences as operators set them, and what mutes a warning (silences, inhibition: alerts.mutes).
    silences: SilenceStore
    mutes: SilencesAndInhibition

    def close(self) -> None:
        self.producer.close()
        self.store.close()
        self.engine.dispose()


def migrate_state_database(settings: Settings) -> list[str]:
    """Apply the state database's pending migrations; the revisions applied, oldest first."""
    engine = db.open_engine(settings.database_url)
    try:
        return upgrade_to_head(engine)
    finally:
        engine.dispose()


def build_services(settings: Settings) -> Services:
    """Everything built from the settings; the state database is migrated to the latest schema first."""
    # The start-up check's catalog when this process ran it on the same, unchanged file.
    catalog = checked_catalog(settings.catalog_path)
    if catalog is None:
        catalog = load_catalog(settings.catalog_path)
    playbooks = load_playbooks(settings.playbooks_path)
    engine = db.connect(settings.database_url)
    areas = load_areas(settings.areas_path)
    taxonomy = load_taxonomy(settings.taxonomy_path)
    register = settings.asset_register()
    assets = load_assets(register, areas) if register is not None else AssetRegister()
    registry = SensorRegistry(
        engine,
        reserved={s.id for s in catalog.sensors},
        check=lambda sensor: registration_problems(catalog.kinds, areas, sensor),
    )
    live_catalog = LiveCatalog(catalog, source=registry)
    silences = SilenceStore(engine)
    mutes = SilencesAndInhibition(
        silences,
        catalog=live_catalog,
        areas=areas,
        lookback=timedelta(seconds=settings.max_past_age_s),
        wall=lambda: datetime.now(UTC),
    )
    # One outbox for every writer of warnings (signals, the clock, operators, roll-ups, sensor faults,
    # drills): each stages its webhook deliveries in its own transaction.
    outbox = Outbox(areas=areas, first_attempt_after_s=settings.webhook_retry_schedule[0])
    return Services(
        settings=settings,
        catalog=catalog,
        live_catalog=live_catalog,
        registry=registry,
        areas=areas,
        playbooks=playbooks,
        assets=assets,
        store=open_store(settings.store_url),
        engine=engine,
        warnings=WarningService(
            engine,
            catalog=catalog,
            playbooks=playbooks,
            areas=areas,
            fusion_window=timedelta(seconds=settings.fusion_window_s),
            signal_threshold=settings.signal_threshold,
            repository=SqlWarningRepository(engine, outbox=outbox),
            assets=assets,
            mutes=mutes,
            rollup=RollUp(SqlWarningRepository(engine, outbox=outbox), areas=areas),
            lifecycle_config=load_lifecycle(settings.lifecycle_path),
        ),
        checkpoints=CheckpointRepository(engine),
        validator=ReadingValidator(
            live_catalog,
            areas=areas,
            max_future_skew_s=settings.max_future_skew_s,
            max_past_age_s=settings.max_past_age_s,
        ),
        taxonomy=taxonomy,
        reports=ReportRepository(engine),
        models=ModelRepository(engine),
        report_validator=ReportValidator(
            taxonomy=taxonomy,
            areas=areas,
            max_text_chars=settings.max_report_text_chars,
            max_future_skew_s=settings.max_future_skew_s,
            max_past_age_s=settings.max_past_age_s,
        ),
        producer=ConfirmedProducer(producer_config(settings), partitioner=area_partitioner(areas)),
        silences=silences,
        mutes=mutes,
    )


def area_partitioner(areas: AreaIndex) -> AreaPartitioner:
    """How every citywarn producer places readings and reports: by area, dealt out evenly."""
    return AreaPartitioner([a.id for a in (*areas.districts(), *areas.grids())])
