"""Catalog warning lines applied to a whole array of values at once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from config.catalog import LEVELS, Thresholds


def levels_crossed(thresholds: Thresholds | None, values: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]:
    """Per value: -1 when no line is crossed, else the index into ``LEVELS`` (0 blue .. 3 red)."""
    if thresholds is None:
        return np.full(len(values), -1, dtype=np.int8)
    lines = np.array([getattr(thresholds, level) for level in LEVELS])
    if thresholds.direction == "above":
        crossed = np.searchsorted(lines, values, side="right")
    else:
        crossed = np.searchsorted(-lines, -values, side="right")
    return (crossed - 1).astype(np.int8)
