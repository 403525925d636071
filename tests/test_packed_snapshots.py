"""``recordensemble``'s packed snapshots: resumed bit for bit, cut to what they hold, refused when unsafe.

A packed snapshot is the kernel's own two arrays (``get_packed_state``), read back
into compiled code that checks no bounds, so every counter that indexes a buffer
is checked before the state is used (``record_kernel.snapshot_problem``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from models.detectors import record_kernel as k
from models.detectors.record_ensemble import RecordEnsembleDetector
from models.series_checkpoint import decode_snapshot, encode_snapshot
from models.state_codec import StateDecodeError

# Small enough that in 700 hourly points every buffer fills and wraps: the value, jump and residual
# windows, the record deques (a 40-point history) and the seasonal rings (2 days of 4 slots).
SMALL = {
    "window": 64,
    "level_len": 5,
    "density_len": 6,
    "history": 40,
    "warmup": 8,
    "bins": 4,
    "days": 2,
    "residuals": 30,
}
HOUR = 3600.0


def series(n: int, seed: int, step: float = HOUR) -> tuple[np.ndarray, np.ndarray]:
    """A daily cycle with noise, a spike, a stuck stretch, a level shift and a missing reading."""
    rng = np.random.default_rng(seed)
    ts = 1_790_000_000.0 + step * np.arange(n)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * ts / 86400.0) + rng.standard_normal(n)
    values[n // 3] += 25.0
    values[n // 2 : n // 2 + 12] = values[n // 2]
    values[2 * n // 3 :] += 6.0
    values[n // 4] = np.nan
    return ts, values


def through_a_snapshot(det: RecordEnsembleDetector, coming: int) -> RecordEnsembleDetector:
    """``det`` saved as the engine saves a snapshot, to bytes, and read back as a restore reads it."""
    blob = encode_snapshot({"detector": det.get_packed_state()})
    return RecordEnsembleDetector.from_state(decode_snapshot(blob)["detector"], coming=coming)


@pytest.mark.parametrize("params", [SMALL, {}], ids=["small-wrapping", "service-defaults"])
@pytest.mark.parametrize("cut", [1, 2, 9, 120, 333, 650])
def test_a_packed_snapshot_resumes_bit_for_bit(params: dict[str, int], cut: int) -> None:
    ts, values = series(700, seed=cut, step=HOUR if params else 300.0)
    whole = RecordEnsembleDetector(**params).score_batch(ts, values)
    first = RecordEnsembleDetector(**params)
    before = first.score_batch(ts[:cut], values[:cut])
    for coming in (0, len(ts) - cut):
        resumed = through_a_snapshot(first, coming)
        assert resumed.get_state() == first.get_state()
        after = resumed.score_batch(ts[cut:], values[cut:])
        assert np.array_equal(np.concatenate([before.scores, after.scores]), whole.scores)
        for name, row in whole.evidence.items():
            joined = np.concatenate([before.evidence[name], after.evidence[name]])
            assert np.array_equal(joined, row, equal_nan=True), name


def test_a_snapshot_taken_while_the_detector_scores_on_is_the_state_at_that_moment() -> None:
    ts, values = series(300, seed=3)
    det = RecordEnsembleDetector(**SMALL)
    det.score_batch(ts[:200], values[:200])
    packed, expected = det.get_packed_state(), det.get_state()
    det.score_batch(ts[200:], values[200:])
    assert RecordEnsembleDetector.from_state(packed).get_state() == expected


def test_a_list_snapshot_written_before_packed_ones_still_resumes_bit_for_bit() -> None:
    """Snapshots already in a checkpoint store hold ``get_state``'s lists: an upgraded worker reads them."""
    ts, values = series(700, seed=5)
    whole = RecordEnsembleDetector(**SMALL).score_batch(ts, values)
    first = RecordEnsembleDetector(**SMALL)
    before = first.score_batch(ts[:400], values[:400])
    blob = encode_snapshot({"detector": first.get_state()})
    resumed = RecordEnsembleDetector.from_state(decode_snapshot(blob)["detector"], coming=300)
    after = resumed.score_batch(ts[400:], values[400:])
    assert np.array_equal(np.concatenate([before.scores, after.scores]), whole.scores)


def test_a_packed_snapshot_holds_no_empty_room_and_no_sorted_copies() -> None:
    """Right after its buffers doubled a young series' arrays are about half empty; its snapshot is
    not, and is no larger than the lists it replaces."""
    det = RecordEnsembleDetector()
    ts, values = series(260, seed=7, step=300.0)
    det.score_batch(ts, values)
    room = len(det._win_ring) - int(det._i[k.C_WIN_N])
    assert room > 40, "the value window doubled past what it holds"
    packed = det.get_packed_state()
    held = int(det._i[k.C_WIN_N]) + int(det._i[k.C_JUMP_N]) + int(det._i[k.C_RES_N])
    assert len(packed["floats"]) <= det._f.size - held - room  # neither the room nor the sorted copies
    assert len(encode_snapshot({"detector": packed})) <= 1.2 * len(
        encode_snapshot({"detector": det.get_state()})
    )


def packed_small(points: int = 500) -> tuple[RecordEnsembleDetector, dict[str, Any]]:
    ts, values = series(points, seed=11)
    det = RecordEnsembleDetector(**SMALL)
    det.score_batch(ts, values)
    return det, decode_snapshot(encode_snapshot({"detector": det.get_packed_state()}))["detector"]


REC_META, SEASON_META = k.N_HEAD, k.N_HEAD + 4 * k.N_CHANNELS


def setting(index: int, value: int) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        state["ints"][index] = value

    return change


CORRUPTIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "another layout": lambda s: s.update(layout=k.LAYOUT + 1),
    "impossible parameters": lambda s: s["params"].update(window=1),
    "no parameters": lambda s: s.pop("params"),
    "ints cut short": lambda s: s.update(ints=s["ints"][:-1]),
    "floats cut short": lambda s: s.update(floats=s["floats"][:-1]),
    "floats too long": lambda s: s.update(floats=np.append(s["floats"], 0.0)),
    "ints as floats": lambda s: s.update(ints=s["ints"].astype(np.float64)),
    "a list, not an array": lambda s: s.update(ints=s["ints"].tolist()),
    "no floats": lambda s: s.pop("floats"),
    "more values than the window holds": setting(k.C_WIN_N, 10**6),
    "a negative count": setting(k.C_JUMP_N, -1),
    "a head past its ring": setting(k.C_WIN_HEAD, SMALL["window"]),
    "a head past the density ring": setting(k.C_CAP_HEAD, SMALL["density_len"]),
    "a capacity past its parameter": setting(k.S_WIN, SMALL["window"] + 1),
    "a previous-value flag of 2": setting(k.C_HAS_PREV, 2),
    "a record deque longer than its buffer": setting(REC_META + 1, 10**6),
    "a record head past its buffer": setting(REC_META, 10**6),
    "a seasonal slot keeping more days than its buffer": setting(SEASON_META + 1, 10**6),
    "a seasonal ring start past its buffer": setting(SEASON_META, 10**6),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_packed_state_the_kernel_could_not_score_safely_is_refused(name: str) -> None:
    _, state = packed_small()
    assert RecordEnsembleDetector.from_state(state).get_state(), "the unchanged state is read"
    _, state = packed_small()
    CORRUPTIONS[name](state)
    with pytest.raises(StateDecodeError):
        RecordEnsembleDetector.from_state(state)


def test_a_density_ring_not_yet_full_that_claims_to_wrap_is_refused() -> None:
    """Below its length the density ring holds its values from slot 0; a head elsewhere is corrupt."""
    det = RecordEnsembleDetector(**SMALL)
    ts, values = series(SMALL["warmup"] + 2, seed=13)
    det.score_batch(ts, values)
    state = det.get_packed_state()
    assert 0 < state["ints"][k.C_CAP_N] < SMALL["density_len"] and state["ints"][k.C_CAP_HEAD] == 0
    state["ints"][k.C_CAP_HEAD] = 1
    with pytest.raises(StateDecodeError, match="density ring"):
        RecordEnsembleDetector.from_state(state)


WARM_UP_THEN_RESTORE = """
import json
import numba
import numpy as np
from models.detectors import record_kernel as k
from models.detectors.record_ensemble import RecordEnsembleDetector
from models.series_checkpoint import decode_snapshot, encode_snapshot

def compiled():
    kinds = numba.core.dispatcher.Dispatcher
    return {n: len(f.signatures) for n, f in vars(k).items() if isinstance(f, kinds)}

RecordEnsembleDetector.warm_up()
warm = compiled()
ts = 1_790_000_000.0 + 300.0 * np.arange(400)
det = RecordEnsembleDetector()
det.score_batch(ts[:350], np.cos(ts[:350] / 5000.0))
blob = encode_snapshot({"detector": det.get_packed_state()})
again = RecordEnsembleDetector.from_state(decode_snapshot(blob)["detector"], coming=50)
again.score_batch(ts[350:], np.cos(ts[350:] / 5000.0))
print(json.dumps({"warm": warm, "after": compiled()}))
"""


def test_warm_up_compiles_what_a_restore_and_its_batch_call() -> None:
    """A worker's first batch restores the series it brings: whatever the kernel must compile for that
    (``uncut``) belongs in ``warm_up``, not in that batch (3.5 s of it, measured)."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", WARM_UP_THEN_RESTORE], capture_output=True, text=True, check=True, timeout=600
    )
    figures = json.loads(done.stdout.splitlines()[-1])
    warm, after = figures["warm"], figures["after"]
    for entry in ("score_points", "grow_into", "cut", "uncut"):
        assert warm[entry] == 1, entry
    assert after == warm  # the restore and the batch after it compiled nothing more
