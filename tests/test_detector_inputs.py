"""``recordensemble`` takes any 1-d float input, and its evidence reads as the mapping it always was.

The fast paths (inputs checked by hand, evidence rows made on demand) must not
change what a caller gets: the same scores for read-only, strided, big-endian or
list inputs as for the engine's own arrays, and evidence that behaves like a dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from models.detectors.record_ensemble import RecordEnsembleDetector
from models.detectors.record_kernel import EVIDENCE

N = 400


def _series() -> tuple[np.ndarray, np.ndarray]:
    ts = 1.4e9 + 300.0 * np.arange(N)
    values = 20 + np.random.default_rng(11).normal(0, 1, N)
    values[350] = 60.0
    return ts, values


def _read_only(a: np.ndarray) -> np.ndarray:
    b = a.copy()
    b.flags.writeable = False
    return b


@pytest.mark.parametrize(
    "convert",
    [
        _read_only,
        lambda a: np.repeat(a, 2)[::2],  # a strided view, not C-contiguous
        lambda a: a.astype(">f8"),  # the same values, big-endian: another dtype object
        lambda a: a.tolist(),
    ],
    ids=["read-only", "strided", "big-endian", "list"],
)
def test_any_float_input_scores_as_the_engine_arrays(convert: Callable[[np.ndarray], Any]) -> None:
    ts, values = _series()
    expected = RecordEnsembleDetector().score_batch(ts, values)
    got = RecordEnsembleDetector().score_batch(convert(ts), convert(values))
    np.testing.assert_array_equal(got.scores, expected.scores)
    assert got.scores[350] > 0.9 > float(np.median(got.scores))


def test_a_read_only_input_is_copied_not_changed() -> None:
    ts, values = _series()
    frozen = _read_only(values)
    RecordEnsembleDetector().score_batch(_read_only(ts), frozen)
    assert not frozen.flags.writeable
    np.testing.assert_array_equal(frozen, values)


def test_evidence_rows_behave_as_a_mapping() -> None:
    ts, values = _series()
    result = RecordEnsembleDetector().score_batch(ts, values)
    evidence = result.evidence
    assert list(evidence) == list(EVIDENCE) and len(evidence) == len(EVIDENCE)
    assert evidence.get("no such evidence") is None
    assert evidence.get("no such evidence", 7) == 7
    with pytest.raises(KeyError):
        evidence["no such evidence"]
    name = EVIDENCE[0]
    assert evidence[name].shape == (N,)
    at = result.evidence_at(350)
    assert set(at) == set(EVIDENCE)
    assert at[name] == float(evidence[name][350])
    assert dict(evidence.items())[name] is not None
