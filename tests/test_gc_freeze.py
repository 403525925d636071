"""What ingest is built from (the catalog, the models, the scoring engine) is frozen out of full collections.

A worker's full collections walked every object it had ever built, 180 to 350 ms each, every 8 to 10 s
in bench.pipeline's latency phase, and every reading in hand waited them out. Frozen when ingest
starts (``app.workers.start_ingest``), those objects are never walked again.
"""

from __future__ import annotations

import gc
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from bench.isolation import isolated_settings
from ingest.broker import EmbeddedBroker


def test_the_objects_ingest_starts_with_are_not_walked_by_full_collections(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    )
    gc.unfreeze()  # what earlier tests froze, so only this app's start counts
    try:
        with TestClient(create_app(settings, run_ingest=True)) as client:
            sink = client.app.state.consumers["readings"].sink  # type: ignore[attr-defined]
            engine, catalog = sink.engine, client.app.state.services.catalog  # type: ignore[attr-defined]
            assert gc.is_tracked(engine) and gc.get_freeze_count() > 0
            walked = {id(o) for o in gc.get_objects()}  # generations 0 to 2: what a full collection walks
            assert id(engine) not in walked and id(catalog) not in walked
    finally:
        gc.unfreeze()
