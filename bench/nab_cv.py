"""Leave-one-category-out cross-validation of the signal threshold on NAB.

NAB's optimised score picks the threshold on the very files it scores: it says
how well a detector *can* do, not what a city gets from settings fixed in
advance. Here each development category is held out in turn; the signal
threshold (the one tuned constant of the decision step) is chosen from
``GRID`` on the other categories, and the held-out category is scored at that
fixed choice (standard profile).

Only the threshold differs between candidates, so the detector scores each
file once. NAB series have no kind, hence no warning lines and no minimum
deviation, so a point is a signal exactly when its score reaches the
threshold outside the hold-off of the previous signal (or breaks through it);
``signals_at`` computes
that directly, and a test pins it against ``models.decision``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.nab_scoring import (
    STANDARD,
    CorpusFile,
    CostMatrix,
    LabelledSeries,
    normalised,
    null_score,
    perfect_score,
    raw_score,
)
from models.decision import DecisionRule, SeriesDecision, decide_series, strength
from models.protocol import FloatArray

# Every threshold the optimised figure tries, highest first so a tie goes to fewer signals.
FINE: tuple[float, ...] = tuple(round(0.995 - 0.0025 * k, 4) for k in range(199))
# The coarser grid cross-validation chooses from: a choice finer than 0.01 would be fitted noise.
GRID: tuple[float, ...] = tuple(t for t in FINE if round(t * 100, 6).is_integer())
SIGNALLED = 1.0  # score of a signalled row in ``signalled``; the threshold that counts exactly those rows


def _decide(corpus_file: CorpusFile, scores: FloatArray, rule: DecisionRule) -> tuple[FloatArray, FloatArray]:
    """Held scores and signals (``SIGNALLED`` or 0) of one file from a fresh series state.

    Baselines are NaN: with NAB's minimum deviation of 0 every deviation is enough.
    """
    nan = np.full(len(scores), np.nan)
    decisions = decide_series(SeriesDecision(), rule, corpus_file.ts_seconds, corpus_file.values, scores, nan)
    held = np.array([d.held_score for d in decisions], dtype=np.float64)
    signals = np.array([SIGNALLED if d.signal else 0.0 for d in decisions], dtype=np.float64)
    return held, signals


def held_scores(corpus_file: CorpusFile, scores: FloatArray, rule: DecisionRule) -> FloatArray:
    """The detector's scores with the hold-off after each of ``rule``'s signals set to 0."""
    return _decide(corpus_file, scores, rule)[0]


def signalled(corpus_file: CorpusFile, scores: FloatArray, rule: DecisionRule) -> FloatArray:
    """``SIGNALLED`` where the service would emit a signal under ``rule``, 0 elsewhere."""
    return _decide(corpus_file, scores, rule)[1]


def signals_at(scores: FloatArray, threshold: float, rule: DecisionRule) -> FloatArray:
    """What ``signalled`` gives for a series without kind, in O(points at or above the threshold)."""
    out = np.zeros(len(scores))
    last, held_strength = -rule.hold_points, 0.0
    for i in np.flatnonzero(scores >= threshold).tolist():
        s = strength(float(scores[i]))
        if i - last >= rule.hold_points or s >= rule.escalation * held_strength:
            out[i] = SIGNALLED
            last, held_strength = i, s
    return out


@dataclass(frozen=True, slots=True)
class ScoreTable:
    """Raw NAB score of every file at every threshold, with each file's null and perfect scores."""

    thresholds: tuple[float, ...]
    categories: tuple[str, ...]  # one per file
    raw: FloatArray  # (thresholds, files)
    null: FloatArray
    perfect: FloatArray

    def score(self, raw: FloatArray, files: npt.NDArray[np.bool_]) -> float | None:
        """Normalised score of ``files`` given each file's raw score; None when they hold no window."""
        null, perfect = float(self.null[files].sum()), float(self.perfect[files].sum())
        return None if null == perfect else normalised(float(raw[files].sum()), null, perfect)

    def corpus_score(self, threshold: float) -> float:
        """The normalised score of every file at ``threshold`` (0 when no file holds a window)."""
        raw = self.raw[self.thresholds.index(threshold)]
        return self.score(raw, np.ones(len(self.categories), dtype=bool)) or 0.0

    def best(self, thresholds: Sequence[float], files: npt.NDArray[np.bool_]) -> float:
        """The threshold among ``thresholds`` scoring best on ``files``; ties go to the earlier."""
        scores = [self.score(self.raw[self.thresholds.index(t)], files) for t in thresholds]
        return thresholds[int(np.argmax([-np.inf if s is None else s for s in scores]))]


def category_of(corpus_file: CorpusFile) -> str:
    return corpus_file.name.split("/", 1)[0]


def build_table(
    corpus: Sequence[CorpusFile],
    scores: Sequence[FloatArray],
    thresholds: Sequence[float],
    rule: DecisionRule,
    cost: CostMatrix = STANDARD,
) -> ScoreTable:
    """Score every file at every threshold; ``rule`` supplies the hold-off."""
    raw = np.array(
        [
            [
                raw_score(LabelledSeries(f.name, signals_at(s, t, rule), f.windows), cost, SIGNALLED)
                for f, s in zip(corpus, scores, strict=True)
            ]
            for t in thresholds
        ]
    )
    series = [LabelledSeries(f.name, s, f.windows) for f, s in zip(corpus, scores, strict=True)]
    return ScoreTable(
        thresholds=tuple(thresholds),
        categories=tuple(category_of(f) for f in corpus),
        raw=raw.reshape(len(thresholds), len(corpus)),
        null=np.array([null_score([s], cost) for s in series]),
        perfect=np.array([perfect_score([s], cost) for s in series]),
    )


@dataclass(frozen=True, slots=True)
class Fold:
    """One held-out category: the threshold chosen without it, and its scores."""

    category: str
    threshold: float
    train_standard: float  # the chosen threshold's score on the other categories
    standard: float | None  # at the chosen threshold; None when the category holds no window
    raw: float
    at_default: float | None  # the same category at the service's settings


@dataclass(frozen=True, slots=True)
class CrossValidation:
    folds: tuple[Fold, ...]
    mean_standard: float  # over the folds that hold a window
    pooled_standard: float  # every file scored at its fold's choice, normalised together
    in_sample: float  # the threshold chosen on every file, as NAB's optimised figure is
    in_sample_standard: float


def cross_validate(
    table: ScoreTable, at_default: FloatArray, thresholds: Sequence[float] | None = None
) -> CrossValidation:
    """Leave each category out, choose a threshold on the rest, score it at that choice.

    ``thresholds`` (default: all of the table's) are the candidates. ``at_default`` is each
    file's raw score at the service's settings, reported beside each fold. A category without
    anomaly windows (NAB's artificialNoAnomaly) has no normalised score of its own; its false
    positives still count in the pooled score.
    """
    candidates = tuple(thresholds or table.thresholds)
    categories = np.array(table.categories)
    every = np.ones(len(categories), dtype=bool)
    pooled = np.zeros(len(categories))
    folds = []
    for category in sorted(set(table.categories)):
        test = categories == category
        chosen = table.best(candidates, ~test)
        row = table.raw[table.thresholds.index(chosen)]
        pooled[test] = row[test]
        folds.append(
            Fold(
                category=category,
                threshold=chosen,
                train_standard=table.score(row, ~test) or 0.0,
                standard=table.score(row, test),
                raw=float(row[test].sum()),
                at_default=table.score(at_default, test),
            )
        )
    defined = [f.standard for f in folds if f.standard is not None]
    in_sample = table.best(candidates, every)
    return CrossValidation(
        folds=tuple(folds),
        mean_standard=float(np.mean(defined)) if defined else float("nan"),
        pooled_standard=table.score(pooled, every) or 0.0,
        in_sample=in_sample,
        in_sample_standard=table.corpus_score(in_sample),
    )
