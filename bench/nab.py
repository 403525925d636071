"""Run citywarn detectors over the NAB corpus and score them with NAB's rules.

Run: ``python -m bench.nab --data DIR --labels FILE --out RESULTS
[--detector NAME[,NAME...]] [--json PATH] [--profiles FILE] [--cv]``.

Each ``DIR/<category>/<file>.csv`` is fed, in order, to a fresh detector
through ``score_batch``. Two figures per profile follow, first the one a city
gets:

* **at the service's settings**: the detections are exactly the points the
  service would signal (``models.decision`` with the rule the scoring engine
  builds for a series without kind, at ``Settings().signal_threshold``), with
  no threshold search;
* **optimised**: NAB's figure, the threshold chosen on the very files scored,
  for comparison with published results: the best of ``bench.nab_cv.FINE``,
  each signalled with the service's hold-off (or, with ``--raw``, NAB's own
  search over the detector's scores, without hold-off).

The scores, held at 0 after each signal at the service's settings, go to
``RESULTS/<detector>/<category>/<detector>_<file>.csv``
(``timestamp,value,anomaly_score``, the layout NAB's own scorer reads,
timestamps and values as in the input). ``--cv`` adds leave-one-category-out
cross-validation of the signal threshold (``bench.nab_cv``). Throughput is
points per second of CPU time spent inside the detector, i.e. per core, after
the detector's own warm-up (a compiled detector compiles, or loads its cached
machine code, there, as the service does once at start-up).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.nab_cv import (
    FINE,
    GRID,
    SIGNALLED,
    CrossValidation,
    ScoreTable,
    build_table,
    cross_validate,
    held_scores,
    signalled,
)
from bench.nab_scoring import (
    STANDARD,
    CorpusFile,
    CostMatrix,
    LabelledSeries,
    ProfileResult,
    load_corpus,
    load_profiles,
    normalised,
    raw_score,
    score_all_profiles,
)
from config.settings import Settings
from models import registry
from models.decision import DecisionRule
from models.protocol import FloatArray


@dataclass(frozen=True, slots=True)
class DetectorRun:
    """One detector's own scores on every file, and the CPU seconds it spent producing them.

    Kept before any decision step, so every rule (the service's, or each cross-validation
    candidate) is applied to the same scores without running the detector again.
    """

    detector: str
    corpus: Sequence[CorpusFile]
    scores: list[FloatArray]
    cpu_seconds: float

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.scores)

    @property
    def points_per_s(self) -> float:
        return self.points / self.cpu_seconds if self.cpu_seconds > 0 else float("inf")

    def labelled(self, scores: Sequence[FloatArray]) -> list[LabelledSeries]:
        return [LabelledSeries(f.name, s, f.windows) for f, s in zip(self.corpus, scores, strict=True)]


def default_detector() -> str:
    """The service's default detector, or NAB's baseline if the registry names none."""
    return str(getattr(registry, "DEFAULT_DETECTOR", "windowedgaussian"))


def service_rule(settings: Settings) -> DecisionRule:
    """The rule the scoring engine builds for a series without kind or warning lines, as NAB's are."""
    return DecisionRule.for_series(None, None, threshold=settings.signal_threshold)


def detector_scores(detector_name: str, corpus_file: CorpusFile) -> tuple[FloatArray, float]:
    """The scores of one file from a fresh detector, and the CPU seconds inside the detector."""
    detector = registry.detector_class(detector_name)()
    started = time.process_time()
    batch = detector.score_batch(corpus_file.ts_seconds, corpus_file.values)
    elapsed = time.process_time() - started
    scores = np.asarray(batch.scores, dtype=np.float64)
    if scores.shape != corpus_file.values.shape:
        raise ValueError(f"{detector_name} returned {scores.shape} scores for {corpus_file.name}")
    return scores, elapsed


def results_path(out_dir: Path, detector_name: str, corpus_name: str) -> Path:
    """``RESULTS/<detector>/<category>/<detector>_<file>.csv``, as NAB's scorer expects."""
    category, file_name = corpus_name.split("/", 1)
    return out_dir / detector_name / category / f"{detector_name}_{file_name}"


def write_results(path: Path, corpus_file: CorpusFile, scores: FloatArray) -> None:
    """Echo the input rows with an ``anomaly_score`` column (``repr`` keeps full precision)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,value,anomaly_score"]
    lines += [
        f"{ts},{value},{float(score)!r}"
        for ts, value, score in zip(corpus_file.timestamp_text, corpus_file.value_text, scores, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def warm_up(detector_name: str) -> None:
    """Compile a compiled detector as the scoring engine does at start-up, not inside the timing."""
    warm = getattr(registry.detector_class(detector_name), "warm_up", None)
    if callable(warm):
        warm()


def run_detector(detector_name: str, corpus: Sequence[CorpusFile]) -> DetectorRun:
    """Score every file with a fresh instance of ``detector_name``."""
    warm_up(detector_name)
    scores, cpu = [], 0.0
    for corpus_file in corpus:
        file_scores, elapsed = detector_scores(detector_name, corpus_file)
        cpu += elapsed
        scores.append(file_scores)
    return DetectorRun(detector_name, corpus, scores, cpu)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One detector's figures: at the service's settings, optimised, and optionally cross-validated."""

    run: DetectorRun
    rule: DecisionRule
    at_default: dict[str, ProfileResult]
    optimised: dict[str, ProfileResult]
    cv: CrossValidation | None


def optimised_profile(table: ScoreTable) -> ProfileResult:
    """The best threshold of ``FINE`` for the whole corpus, each scored as the service would signal."""
    every = np.ones(len(table.categories), dtype=bool)
    best = table.best(table.thresholds, every)
    raw = float(table.raw[table.thresholds.index(best)].sum())
    null, perfect = float(table.null.sum()), float(table.perfect.sum())
    return ProfileResult(best, raw, null, perfect, normalised(raw, null, perfect))


def evaluate(
    run: DetectorRun,
    rule: DecisionRule,
    profiles: Mapping[str, CostMatrix],
    out_dir: Path,
    *,
    raw: bool,
    cv: bool,
) -> Evaluation:
    """Score ``run`` at ``rule``, then optimised (writing the results files), then cross-validated.

    The optimised figure tries every threshold of ``FINE`` with the service's hold-off, or, with
    ``raw``, searches NAB's way over the detector's own scores (no hold-off).
    """
    signals = run.labelled([signalled(f, s, rule) for f, s in zip(run.corpus, run.scores, strict=True)])
    at_default = score_all_profiles(signals, profiles, threshold=SIGNALLED)
    held = (
        run.scores if raw else [held_scores(f, s, rule) for f, s in zip(run.corpus, run.scores, strict=True)]
    )
    for corpus_file, file_scores in zip(run.corpus, held, strict=True):
        write_results(results_path(out_dir, run.detector, corpus_file.name), corpus_file, file_scores)
    if raw:
        optimised = score_all_profiles(run.labelled(run.scores), profiles)
    else:
        tables = {
            name: build_table(run.corpus, run.scores, FINE, rule, cost) for name, cost in profiles.items()
        }
        optimised = {name: optimised_profile(table) for name, table in tables.items()}
    validation = None
    if cv:
        table = build_table(run.corpus, run.scores, GRID, rule)
        default_raw = np.array([raw_score(s, STANDARD, SIGNALLED) for s in signals])
        validation = cross_validate(table, default_raw)
    return Evaluation(run, rule, at_default, optimised, validation)


def cv_summary(cv: CrossValidation) -> dict[str, object]:
    folds = [
        {
            "category": f.category,
            "threshold": f.threshold,
            "train_standard": round(f.train_standard, 4),
            "standard": None if f.standard is None else round(f.standard, 4),
            "raw": round(f.raw, 4),
            "standard_at_default": None if f.at_default is None else round(f.at_default, 4),
        }
        for f in cv.folds
    ]
    return {
        "folds": folds,
        "mean_standard": round(cv.mean_standard, 4),
        "pooled_standard": round(cv.pooled_standard, 4),
        "in_sample": {"threshold": cv.in_sample, "standard": round(cv.in_sample_standard, 4)},
    }


def summary(ev: Evaluation) -> dict[str, object]:
    """The ``--json`` record for one detector; ``cv`` is the protocol choosing the threshold."""
    record: dict[str, object] = {
        "detector": ev.run.detector,
        "settings": {"signal_threshold": ev.rule.threshold, "hold_points": ev.rule.hold_points},
        "scores_at_default": {name: round(r.score, 4) for name, r in ev.at_default.items()},
        "scores": {name: round(r.score, 4) for name, r in ev.optimised.items()},
        "optimised_thresholds": {name: r.threshold for name, r in ev.optimised.items()},
        "points_per_s": round(ev.run.points_per_s, 1),
    }
    if ev.cv is not None:
        record["cv"] = cv_summary(ev.cv)
    return record


def print_report(ev: Evaluation) -> None:
    run, rule = ev.run, ev.rule
    print(f"{run.detector}: {len(run.corpus)} files, {run.points} points")
    print(
        f"  at the service's settings (signal threshold {rule.threshold:g}, hold-off {rule.hold_points}"
        " points after a signal; no search), then NAB's optimised threshold:"
    )
    for name, r in ev.at_default.items():
        o = ev.optimised[name]
        print(
            f"  {name:<20} score {r.score:7.2f}   optimised {o.score:7.2f} at threshold {o.threshold:.6g}"
            f"   (null {r.null:.1f}, perfect {r.perfect:.1f})"
        )
    print(f"  points/s per core: {run.points_per_s:,.0f} ({run.cpu_seconds:.2f} s CPU in the detector)")
    if ev.cv is None:
        return
    cv = ev.cv
    print("  leave one category out, standard profile, threshold chosen on the other categories:")
    for f in cv.folds:
        held_out = "   n/a" if f.standard is None else f"{f.standard:6.2f}"
        default = "   n/a" if f.at_default is None else f"{f.at_default:6.2f}"
        print(
            f"    {f.category:<22} threshold {f.threshold:<5g} train {f.train_standard:6.2f}"
            f"  held out {held_out} (raw {f.raw:7.3f})  at the service's settings {default}"
        )
    print(
        f"    mean {cv.mean_standard:.2f} over categories with windows; pooled {cv.pooled_standard:.2f};"
        f" chosen on every category: {cv.in_sample:g} ({cv.in_sample_standard:.2f})"
    )


def detector_names(flags: Sequence[str] | None) -> list[str]:
    """``--detector a --detector b,c`` -> ``[a, b, c]``; the default detector when none is given."""
    names = [n.strip() for flag in flags or () for n in flag.split(",") if n.strip()]
    return names or [default_detector()]


def default_profiles_path(data_dir: Path) -> Path | None:
    candidate = data_dir.parent / "profiles.json"
    return candidate if candidate.is_file() else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.nab", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="NAB data dir: <category>/<file>.csv")
    parser.add_argument("--labels", type=Path, required=True, help="combined_windows.json")
    parser.add_argument("--out", type=Path, required=True, help="results dir (NAB layout)")
    parser.add_argument(
        "--detector", action="append", help="registered detector name(s); repeat or comma-separate"
    )
    parser.add_argument("--json", type=Path, help="write scores and throughput as JSON here")
    parser.add_argument("--profiles", type=Path, help="profiles.json (default: DATA/../profiles.json)")
    parser.add_argument(
        "--raw",
        action="store_true",
        help="optimise over the detector's own scores, without the service's hold-off "
        "(to reproduce published baselines such as Windowed Gaussian)",
    )
    parser.add_argument(
        "--cv",
        action="store_true",
        help="leave one category out: choose the threshold on the others, score it at that choice",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profiles = load_profiles(args.profiles or default_profiles_path(args.data))
    corpus = load_corpus(args.data, args.labels)
    rule = service_rule(Settings())
    records = []
    for name in detector_names(args.detector):
        ev = evaluate(run_detector(name, corpus), rule, profiles, args.out, raw=args.raw, cv=args.cv)
        print_report(ev)
        records.append(summary(ev))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = records[0] if len(records) == 1 else records
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
