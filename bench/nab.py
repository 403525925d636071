"""Run citywarn detectors over the NAB corpus and score them with NAB's rules.

Run: ``python -m bench.nab --data DIR --labels FILE --out RESULTS
[--detector NAME[,NAME...]] [--json PATH] [--profiles FILE]``.

Each ``DIR/<category>/<file>.csv`` is fed, in order, to a fresh detector
through ``score_batch`` and the service's decision step (``models.decision``);
its held scores go to
``RESULTS/<detector>/<category>/<detector>_<file>.csv`` (``timestamp,value,
anomaly_score``, the layout NAB's own scorer reads, timestamps and values as
in the input). Then the NAB score for every profile is printed (see
``bench.nab_scoring``) with the detector's throughput: points per second of
CPU time spent inside the detector, i.e. per core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.nab_scoring import (
    CorpusFile,
    LabelledSeries,
    ProfileResult,
    load_corpus,
    load_profiles,
    score_all_profiles,
)
from models import registry
from models.decision import DecisionRule, SeriesDecision, decide_series
from models.protocol import FloatArray


@dataclass(frozen=True, slots=True)
class DetectorRun:
    """One detector's scores on the whole corpus and the CPU seconds it spent producing them."""

    detector: str
    series: list[LabelledSeries]
    cpu_seconds: float

    @property
    def points(self) -> int:
        return sum(len(s.scores) for s in self.series)

    @property
    def points_per_s(self) -> float:
        return self.points / self.cpu_seconds if self.cpu_seconds > 0 else float("inf")


def default_detector() -> str:
    """The service's default detector, or NAB's baseline if the registry names none."""
    return str(getattr(registry, "DEFAULT_DETECTOR", "windowedgaussian"))


def score_file(detector_name: str, corpus_file: CorpusFile, *, raw: bool = False) -> tuple[FloatArray, float]:
    """Held (or ``raw``) scores of one file from a fresh detector, and the CPU seconds inside the detector."""
    detector = registry.detector_class(detector_name)()
    started = time.process_time()
    batch = detector.score_batch(corpus_file.ts_seconds, corpus_file.values)
    elapsed = time.process_time() - started
    if raw:
        return np.asarray(batch.scores, dtype=np.float64), elapsed
    # The service's decision step (hold-off after an alarm) with a rule without
    # warning lines: NAB scores what the service would act on, not raw scores.
    decisions = decide_series(
        SeriesDecision(),
        DecisionRule(),
        corpus_file.ts_seconds,
        corpus_file.values,
        np.asarray(batch.scores, dtype=np.float64),
        np.full(len(corpus_file.values), np.nan),
    )
    scores = np.array([d.held_score for d in decisions], dtype=np.float64)
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


def run_detector(
    detector_name: str, corpus: Sequence[CorpusFile], out_dir: Path, *, raw: bool = False
) -> DetectorRun:
    """Score every file with a fresh instance of ``detector_name`` and write the results files."""
    series, cpu = [], 0.0
    for corpus_file in corpus:
        scores, elapsed = score_file(detector_name, corpus_file, raw=raw)
        cpu += elapsed
        write_results(results_path(out_dir, detector_name, corpus_file.name), corpus_file, scores)
        series.append(LabelledSeries(corpus_file.name, scores, corpus_file.windows))
    return DetectorRun(detector_name, series, cpu)


def summary(run: DetectorRun, results: dict[str, ProfileResult]) -> dict[str, object]:
    """The ``--json`` record for one detector."""
    return {
        "detector": run.detector,
        "scores": {name: round(r.score, 4) for name, r in results.items()},
        "points_per_s": round(run.points_per_s, 1),
    }


def print_report(run: DetectorRun, results: dict[str, ProfileResult]) -> None:
    print(f"{run.detector}: {len(run.series)} files, {run.points} points")
    for name, r in results.items():
        print(
            f"  {name:<20} score {r.score:7.2f}   threshold {r.threshold:.6g}"
            f"   raw {r.raw:.3f} (null {r.null:.1f}, perfect {r.perfect:.1f})"
        )
    print(f"  points/s per core: {run.points_per_s:,.0f} ({run.cpu_seconds:.2f} s CPU in the detector)")


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
        help="score the detector's own scores, without the service's decision step "
        "(to reproduce published baselines such as Windowed Gaussian)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profiles = load_profiles(args.profiles or default_profiles_path(args.data))
    corpus = load_corpus(args.data, args.labels)
    records = []
    for name in detector_names(args.detector):
        run = run_detector(name, corpus, args.out, raw=args.raw)
        results = score_all_profiles(run.series, profiles)
        print_report(run, results)
        records.append(summary(run, results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = records[0] if len(records) == 1 else records
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
