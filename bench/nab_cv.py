"""Leave-one-category-out cross-validation of the decision step's constants on NAB.

NAB's optimised score picks the threshold on the very files it scores: it says
how well a detector *can* do, not what a city gets from settings fixed in
advance. Here each development category is held out in turn; the decision
step's tuned constants (the signal threshold and the hold-off trigger) are
chosen from a small grid on the other categories, and the held-out category is
scored at that fixed choice (standard profile).

Only the decision step differs between candidates, so the detector scores each
file once, and the hold-off runs once per file and trigger: NAB series have no
kind, hence no warning lines and no minimum deviation, so a point is a signal
exactly when its held score reaches the threshold (a test pins this against
``models.decision``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

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
from models.decision import DecisionRule, SeriesDecision, decide_series
from models.protocol import FloatArray

# Highest first, so a tie in training score goes to the higher threshold (fewer signals).
GRID: tuple[float, ...] = (0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)
SIGNALLED = 1.0  # score of a signalled row in ``signalled``; the threshold that counts exactly those rows


@dataclass(frozen=True, slots=True)
class Candidate:
    """One choice of the decision step's tuned constants."""

    threshold: float
    hold_trigger: float


def variants(rule: DecisionRule) -> dict[str, tuple[Candidate, ...]]:
    """The candidate sets compared: trigger chosen too (at most the threshold), tied to it, or ``rule``'s."""
    return {
        "trigger_chosen": tuple(Candidate(t, g) for t in GRID for g in GRID if g <= t),
        "trigger_is_threshold": tuple(Candidate(t, t) for t in GRID),
        "trigger_default": tuple(Candidate(t, rule.hold_trigger) for t in GRID),
    }


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
    """The detector's scores after ``rule``'s hold-off: what NAB's threshold search runs over."""
    return _decide(corpus_file, scores, rule)[0]


def signalled(corpus_file: CorpusFile, scores: FloatArray, rule: DecisionRule) -> FloatArray:
    """``SIGNALLED`` where the service would emit a signal under ``rule``, 0 elsewhere."""
    return _decide(corpus_file, scores, rule)[1]


@dataclass(frozen=True, slots=True)
class ScoreTable:
    """Raw NAB score of every file at every candidate, with each file's null and perfect scores."""

    candidates: tuple[Candidate, ...]
    categories: tuple[str, ...]  # one per file
    raw: FloatArray  # (candidates, files)
    null: FloatArray
    perfect: FloatArray

    def score(self, raw: FloatArray, files: npt.NDArray[np.bool_]) -> float | None:
        """Normalised score of ``files`` given each file's raw score; None when they hold no window."""
        null, perfect = float(self.null[files].sum()), float(self.perfect[files].sum())
        return None if null == perfect else normalised(float(raw[files].sum()), null, perfect)

    def corpus_standard(self, candidate: Candidate) -> float:
        """The normalised score of every file at ``candidate`` (0 when no file holds a window)."""
        raw = self.raw[self.candidates.index(candidate)]
        return self.score(raw, np.ones(len(self.categories), dtype=bool)) or 0.0


def category_of(corpus_file: CorpusFile) -> str:
    return corpus_file.name.split("/", 1)[0]


def build_table(
    corpus: Sequence[CorpusFile],
    scores: Sequence[FloatArray],
    candidates: Sequence[Candidate],
    rule: DecisionRule,
    cost: CostMatrix = STANDARD,
) -> ScoreTable:
    """Score every file at every candidate; ``rule`` supplies the constants not searched (hold points)."""
    held = {
        (i, trigger): held_scores(f, s, replace(rule, hold_trigger=trigger))
        for trigger in {c.hold_trigger for c in candidates}
        for i, (f, s) in enumerate(zip(corpus, scores, strict=True))
    }
    raw = np.array(
        [
            [
                raw_score(LabelledSeries(f.name, held[i, c.hold_trigger], f.windows), cost, c.threshold)
                for i, f in enumerate(corpus)
            ]
            for c in candidates
        ]
    )
    series = [LabelledSeries(f.name, s, f.windows) for f, s in zip(corpus, scores, strict=True)]
    return ScoreTable(
        candidates=tuple(candidates),
        categories=tuple(category_of(f) for f in corpus),
        raw=raw.reshape(len(candidates), len(corpus)),
        null=np.array([null_score([s], cost) for s in series]),
        perfect=np.array([perfect_score([s], cost) for s in series]),
    )


@dataclass(frozen=True, slots=True)
class Fold:
    """One held-out category: the choice made without it, and its scores."""

    category: str
    chosen: Candidate
    train_standard: float  # the chosen candidate's score on the other categories
    standard: float | None  # at the chosen candidate; None when the category holds no window
    raw: float
    at_default: float | None  # the same category at the service's settings


@dataclass(frozen=True, slots=True)
class CrossValidation:
    folds: tuple[Fold, ...]
    mean_standard: float  # over the folds that hold a window
    pooled_standard: float  # every file scored at its fold's choice, normalised together
    in_sample: Candidate  # chosen on every file, as NAB's optimised figure is
    in_sample_standard: float


def _choose(table: ScoreTable, candidates: Sequence[Candidate], files: npt.NDArray[np.bool_]) -> int:
    """Index of the candidate scoring best on ``files``; ties go to the earlier (higher threshold)."""
    scores = [table.score(table.raw[table.candidates.index(c)], files) for c in candidates]
    return int(np.argmax([-np.inf if s is None else s for s in scores]))


def cross_validate(
    table: ScoreTable, candidates: Sequence[Candidate], at_default: FloatArray
) -> CrossValidation:
    """Leave each category out, choose among ``candidates`` on the rest, score it at that choice.

    ``at_default`` is each file's raw score at the service's settings, reported beside each fold.
    A category without anomaly windows (NAB's artificialNoAnomaly) has no normalised score of its
    own; its false positives still count in the pooled score.
    """
    categories = np.array(table.categories)
    every = np.ones(len(categories), dtype=bool)
    pooled = np.zeros(len(categories))
    folds = []
    for category in sorted(set(table.categories)):
        test = categories == category
        chosen = candidates[_choose(table, candidates, ~test)]
        row = table.raw[table.candidates.index(chosen)]
        pooled[test] = row[test]
        folds.append(
            Fold(
                category=category,
                chosen=chosen,
                train_standard=table.score(row, ~test) or 0.0,
                standard=table.score(row, test),
                raw=float(row[test].sum()),
                at_default=table.score(at_default, test),
            )
        )
    defined = [f.standard for f in folds if f.standard is not None]
    in_sample = candidates[_choose(table, candidates, every)]
    return CrossValidation(
        folds=tuple(folds),
        mean_standard=float(np.mean(defined)) if defined else float("nan"),
        pooled_standard=table.score(pooled, every) or 0.0,
        in_sample=in_sample,
        in_sample_standard=table.corpus_standard(in_sample),
    )
