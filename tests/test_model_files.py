"""Kind models are stored as skops files: loading one builds only allowed types, never a pickle's code.

The model archive lives in the state database, and a worker loads from it at
start; bytes that could run code there would let anyone who can write one row
run code in every worker. A model that cannot be loaded is left out, with the
other kinds' models loaded as usual, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.preprocessing import FunctionTransformer

from alerts import db
from models.features import window_features
from models.multivariate import KindModel, fit_kind_model
from models.training import latest_kind_models
from store.model_repository import ModelRepository
from tests.test_kind_model_batching import save

FROM, TO = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
NOW = datetime(2026, 2, 2, tzinfo=UTC)


def _model(kind: str, seed: int) -> KindModel:
    rng = np.random.default_rng(seed)
    ts = np.arange(1500, dtype=np.float64) * 300.0
    features = window_features(ts, 5.0 + rng.standard_normal(1500))
    return fit_kind_model(kind, features, trained_from=FROM, trained_to=TO, n_estimators=20)


@pytest.fixture(scope="module")
def gas() -> KindModel:
    return _model("gas", 1)


def _with_payload(model: KindModel, payload: bytes, magic: bytes = b"CWKM2\n") -> bytes:
    """A file laid out as ``to_bytes`` lays it out, around another estimator payload."""
    good = model.to_bytes()
    length = int.from_bytes(good[6:10], "big")  # after the 6-byte magic, the header's length
    meta = json.loads(good[10 : 10 + length])
    meta["estimator_sha256"] = hashlib.sha256(payload).hexdigest()
    header = json.dumps(meta).encode()
    return magic + len(header).to_bytes(4, "big") + header + payload


def test_a_model_file_holds_no_pickle_and_scores_as_saved(gas: KindModel) -> None:
    data = gas.to_bytes()
    assert data.startswith(b"CWKM2\n")
    assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data  # no pickle frame anywhere
    probe = window_features(np.arange(400, dtype=np.float64) * 300.0, np.linspace(0.0, 40.0, 400))
    np.testing.assert_array_equal(KindModel.from_bytes(data).score(probe), gas.score(probe))


def test_a_file_holding_a_type_not_allowed_is_refused_before_it_is_built(gas: KindModel) -> None:
    hostile = skops.io.dumps(FunctionTransformer(func=os.system))
    with pytest.raises(ValueError, match="not allowed"):
        KindModel.from_bytes(_with_payload(gas, hostile))


def test_an_old_pickled_model_is_refused_with_what_to_do(gas: KindModel) -> None:
    old = _with_payload(gas, pickle.dumps(gas.estimator), magic=b"CWKM1\n")
    with pytest.raises(ValueError, match="citywarn train"):
        KindModel.from_bytes(old)


@pytest.fixture(params=["sqlite", "postgresql"])
def archive(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ModelRepository]:
    url = (
        f"sqlite:///{tmp_path}/state.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = db.connect(url)
    yield ModelRepository(engine)
    engine.dispose()


def test_a_kind_whose_model_cannot_be_loaded_is_left_out_and_the_others_load(
    archive: ModelRepository, gas: KindModel, caplog: pytest.LogCaptureFixture
) -> None:
    rain = _model("rainfall", 2)
    save(archive, gas, NOW)
    save(archive, rain, NOW, blob=_with_payload(rain, pickle.dumps(rain.estimator), b"CWKM1\n"))
    loaded = latest_kind_models(archive)
    assert sorted(loaded) == ["gas"] and loaded["gas"].version == gas.version
    assert any("rainfall model was not loaded" in r.getMessage() for r in caplog.records)
