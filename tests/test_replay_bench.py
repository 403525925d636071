"""bench.replay end to end: a tiny labelled corpus through a real ``citywarn run`` and back over its API."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from bench import replay

ROWS = 400
STEP = timedelta(minutes=5)
START = datetime(2015, 3, 1)
# The level shift, inside the labelled window: after the default detector's first day of 5-minute
# points (it scores 0 before row 288), and before row ~338, where it signals on plain noise.
SHIFT_AT = 300


def _write(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,value"]
    lines += [f"{(START + i * STEP):%Y-%m-%d %H:%M:%S},{v:.4f}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


def _corpus(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    shifted = 50 + rng.normal(0, 1, ROWS)
    shifted[SHIFT_AT:] += 25  # a clear, lasting level shift
    quiet = 20 + rng.normal(0, 1, ROWS)
    data = root / "data"
    _write(data / "synthetic" / "shift.csv", shifted)
    _write(data / "synthetic" / "quiet.csv", quiet)
    window = [f"{(START + i * STEP):%Y-%m-%d %H:%M:%S}.000000" for i in (SHIFT_AT - 10, SHIFT_AT + 30)]
    labels = root / "combined_windows.json"
    labels.write_text(json.dumps({"synthetic/shift.csv": [window], "synthetic/quiet.csv": []}))
    return data, labels


def test_replay_warns_the_labelled_level_shift_and_counts_add_up(tmp_path: Path) -> None:
    data, labels = _corpus(tmp_path / "corpus")
    out = tmp_path / "replay.json"

    code = replay.main(["--data", str(data), "--labels", str(labels), "--json", str(out)])

    assert code == 0
    result = json.loads(out.read_text())
    assert result["service_exit_code"] == 0
    assert result["ingest"]["accepted"] == 2 * ROWS and result["ingest"]["rejected"] == 0
    assert result["last_rows_missing"] == []
    files = {f["file"]: f for f in result["files"]}
    shift, quiet = files["synthetic/shift.csv"], files["synthetic/quiet.csv"]
    assert (shift["windows"], shift["windows_warned"]) == (1, 1)
    assert quiet["windows"] == 0 and quiet["windows_warned"] == 0
    warned = [w for w in shift["detail"] if w["where"] == "window 0"]
    assert warned and SHIFT_AT - 10 <= warned[0]["row"] <= SHIFT_AT + 30
    for f in files.values():
        in_windows = sum(1 for w in f["detail"] if w["where"].startswith("window"))
        assert f["warnings"] == in_windows + f["false_warnings"] + f["probation_warnings"]
        assert f["warnings"] == len(f["detail"]) == sum(f["levels"].values())
        assert f["windows_warned"] <= f["windows_with_signals"] <= f["windows"]
    total = result["total"]
    for key in ("rows", "windows", "windows_warned", "false_warnings", "probation_warnings", "warnings"):
        assert total[key] == sum(f[key] for f in files.values()), key
    assert total["warnings_in_no_file"] == 0
    assert result["settings"] == "defaults", "a 33-hour corpus needs no setting changed"
