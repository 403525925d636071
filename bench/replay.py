"""Replay labelled series through a running ``citywarn run`` and count the warnings it opens.

Run: ``python -m bench.replay --data DIR --labels FILE [--files N] [--json OUT]
[--store embedded|influxdb] [--database sqlite|postgresql] [--keep]``.

A black-box check of what the service does end to end at its defaults, as
the maintainers run it: each NAB-format file (``DIR/<category>/<file>.csv``,
windows from ``combined_windows.json``) becomes a sensor in a catalog of its
own (``bench.replay_city``), ``citywarn run`` starts on it as a child process
(``bench.replay_service``), every file's rows are shifted so its last row is
just before now and POSTed to ``/v1/readings`` in time order across files,
and once the consumer has caught up the warnings are read back over the API.

Counted per file: the labelled windows (those wholly inside NAB's probation,
the first 15 % of rows, are not, as NAB does not), the windows where a
warning was opened (its first signal inside the window), and the warnings
opened outside every window: after probation they are false warnings, inside
it they are shown apart. Also the warnings' levels, and the windows in which
any signal joined a warning: signals within the fusion window of an open
warning's last signal join it, so a window seen within six hours of an
earlier incident is counted here rather than as warned.

Everything but the catalog and areas stays at the service's defaults, except
``CITYWARN_MAX_PAST_AGE_S`` when a file spans more than it allows: then it
is raised, and the output says so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.nab_scoring import CorpusFile, load_corpus, probation_length, scored_windows
from bench.replay_city import ReplayedFile, describe, write_city
from bench.replay_service import RunningService, ServiceFailed
from bench.servers import fresh_postgres_database, private_influxd
from config.catalog import LEVELS
from config.settings import ENV_PREFIX, Settings

# Shifts are whole half-hours, so the detector's same-half-hour slots cut the data as they would unshifted.
SHIFT_STEP_S = 1800
LAST_ROW_BEFORE_NOW_S = 60
PAST_AGE_MARGIN_S = 86_400.0  # the consumer checks a reading's age again when it reads it
CATCH_UP_TIMEOUT_S = 1800.0
QUIET_AFTER_LAST_BATCH_S = 3.0  # longer than the consumer's lag interval (2 s), so lag 0 is fresh
PAGE = 500  # GET /v1/warnings' largest page


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


# ---------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class Plan:
    files: list[ReplayedFile]
    shifts_s: list[int]  # added to each file's timestamps
    env: dict[str, str]  # the settings the service runs with that are not its defaults
    notes: list[str]


def sample(corpus: Sequence[CorpusFile], n: int | None) -> list[CorpusFile]:
    """``n`` files taken in turn from each category (name order), so every category is represented."""
    if n is None or n >= len(corpus):
        return list(corpus)
    by_category: dict[str, list[CorpusFile]] = {}
    for f in corpus:
        by_category.setdefault(f.name.split("/")[0], []).append(f)
    queues = [list(v) for _, v in sorted(by_category.items())]
    picked: list[CorpusFile] = []
    while len(picked) < n:
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop(0))
    return sorted(picked, key=lambda f: f.name)


def plan(corpus: Sequence[CorpusFile], now_s: int) -> Plan:
    files = describe(corpus)
    shifts = [
        (now_s - LAST_ROW_BEFORE_NOW_S - int(f.corpus.ts_seconds[-1])) // SHIFT_STEP_S * SHIFT_STEP_S
        for f in files
    ]
    oldest = min(int(f.corpus.ts_seconds[0]) + s for f, s in zip(files, shifts, strict=True))
    env: dict[str, str] = {}
    notes: list[str] = []
    allowed = float(_default("max_past_age_s"))
    needed = now_s - oldest + PAST_AGE_MARGIN_S
    if needed > allowed:
        env[f"{ENV_PREFIX}MAX_PAST_AGE_S"] = str(int(needed))
        notes.append(
            f"{ENV_PREFIX}MAX_PAST_AGE_S raised from {allowed:.0f} to {needed:.0f} s "
            f"({needed / 86_400:.1f} days): the longest file spans {(now_s - oldest) / 86_400:.1f} days, "
            "and the API refuses readings older than the setting"
        )
    return Plan(files=files, shifts_s=shifts, env=env, notes=notes)


# ---------------------------------------------------------------------------- posting


def readings_in_time_order(p: Plan) -> Iterator[bytes]:
    """Each row as one JSON reading, all files interleaved by shifted timestamp (ties: file order)."""
    stamps = np.concatenate(
        [f.corpus.ts_seconds.astype(np.int64) + s for f, s in zip(p.files, p.shifts_s, strict=True)]
    )
    which = np.concatenate([np.full(len(f.corpus.values), n) for n, f in enumerate(p.files)])
    rows = np.concatenate([np.arange(len(f.corpus.values)) for f in p.files])
    for i in np.lexsort((rows, which, stamps)):
        f = p.files[which[i]]
        ts = datetime.fromtimestamp(int(stamps[i]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        value = float(f.corpus.values[rows[i]])
        yield json.dumps({"sensor_id": f.sensor_id, "kind": f.kind, "value": value, "ts": ts}).encode()


def bodies(items: Iterator[bytes], *, max_items: int, max_bytes: int) -> Iterator[bytes]:
    """``{"readings": [...]}`` bodies within the API's item and byte limits."""
    head, tail = b'{"readings":[', b"]}"
    batch: list[bytes] = []
    size = len(head) + len(tail)
    for item in items:
        if batch and (len(batch) >= max_items or size + len(item) + 1 > max_bytes):
            yield head + b",".join(batch) + tail
            batch, size = [], len(head) + len(tail)
        batch.append(item)
        size += len(item) + 1
    if batch:
        yield head + b",".join(batch) + tail


@dataclass
class Posted:
    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    seconds: float = 0.0
    first_rejections: list[Any] = field(default_factory=list)


def post_all(client: httpx.Client, p: Plan) -> Posted:
    out = Posted()
    started = time.monotonic()
    limits = {"max_items": int(_default("max_batch_items")), "max_bytes": int(_default("max_body_bytes"))}
    for body in bodies(readings_in_time_order(p), **limits):
        for attempt in range(10):
            answer = client.post("/v1/readings", content=body, headers={"Content-Type": "application/json"})
            if answer.status_code != 503:
                break
            out.retried += 1
            time.sleep(0.5 * (attempt + 1))
        if answer.status_code not in (202, 422):
            raise ServiceFailed(f"POST /v1/readings answered {answer.status_code}: {answer.text[:500]}")
        result = answer.json()
        out.requests += 1
        out.accepted += int(result["accepted"])
        out.rejected += len(result["rejected"])
        out.first_rejections += result["rejected"][: max(0, 5 - len(out.first_rejections))]
    out.seconds = time.monotonic() - started
    return out


# ---------------------------------------------------------------------------- waiting and reading


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def last_rows_missing(client: httpx.Client, p: Plan) -> list[str]:
    """Files whose last row the store does not hold yet."""
    missing = []
    for f, shift in zip(p.files, p.shifts_s, strict=True):
        last = int(f.corpus.ts_seconds[-1]) + shift
        params: dict[str, str | int] = {"start": _iso(last), "end": _iso(last + 1), "limit": 1}
        answer = client.get(f"/v1/sensors/{f.sensor_id}/series", params=params)
        answer.raise_for_status()
        if not answer.json()["points"]:
            missing.append(f.corpus.name)
    return missing


def wait_caught_up(service: RunningService, client: httpx.Client, p: Plan, timeout_s: float) -> list[str]:
    """Wait until the readings consumer has stored, scored and committed everything posted.

    Done when its lag is 0, no batch has been stored for a while (so that lag
    was measured after the last one) and every file's last row is in the
    store. Returns the files whose last row never arrived (refused by the
    consumer), if the consumer went quiet without them.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not service.alive():
            raise ServiceFailed(f"citywarn run exited while catching up\n{service.log_tail()}")
        body = service.readiness()
        dead = {k: v for k, v in body.get("workers", {}).items() if v.startswith("dead")}
        if dead:
            raise ServiceFailed(f"worker(s) died: {dead}\n{service.log_tail()}")
        health = body.get("consumers", {}).get("readings", {})
        quiet = health.get("last_stored_batch_age_s")
        if health.get("lag") == 0 and quiet is not None and quiet >= QUIET_AFTER_LAST_BATCH_S:
            missing = last_rows_missing(client, p)
            if not missing or quiet >= 10 * QUIET_AFTER_LAST_BATCH_S:
                return missing
        time.sleep(1.0)
    raise ServiceFailed(f"the consumer did not catch up within {timeout_s:.0f} s\n{service.log_tail()}")


def read_warnings(client: httpx.Client) -> list[dict[str, Any]]:
    """Every warning, paged, each with its evidence (the latest the API shows) and history."""
    listed: list[dict[str, Any]] = []
    while True:
        page = client.get("/v1/warnings", params={"limit": PAGE, "offset": len(listed)})
        page.raise_for_status()
        body = page.json()
        listed += body["items"]
        if not body["items"] or len(listed) >= body["total"]:
            break
    details = []
    for w in listed:
        answer = client.get(f"/v1/warnings/{w['id']}")
        answer.raise_for_status()
        details.append(answer.json())
    return details


# ---------------------------------------------------------------------------- counting


@dataclass
class FileResult:
    file: str
    sensor_id: str
    rows: int
    windows: int  # labelled windows not wholly inside probation
    windows_warned: int  # windows in which a warning was opened
    false_warnings: int  # opened after probation, outside every window
    probation_warnings: int  # opened inside probation, outside every window (not scored by NAB)
    warnings: int
    levels: dict[str, int]
    windows_with_signals: int  # windows in which any signal joined a warning (of the evidence shown)
    signals: int  # evidence rows behind the file's warnings
    evidence_complete: bool  # False when the API showed only the latest of a warning's evidence
    detail: list[dict[str, Any]]


def _epoch_s(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def score_file(f: ReplayedFile, shift_s: int, warnings: Sequence[dict[str, Any]]) -> FileResult:
    stamps = f.corpus.ts_seconds.astype(np.int64)
    n = len(stamps)
    windows = scored_windows(n, f.corpus.windows)
    probation = probation_length(n)

    def row_of(text: str) -> int:
        return min(int(np.searchsorted(stamps, _epoch_s(text) - shift_s)), n - 1)

    def window_of(row: int) -> int | None:
        return next((k for k, (lo, hi) in enumerate(windows) if lo <= row <= hi), None)

    warned: set[int] = set()
    with_signals: set[int] = set()
    false = in_probation = signals = 0
    complete = True
    detail = []
    for w in sorted(warnings, key=lambda w: str(w["first_signal_at"])):
        row = row_of(w["first_signal_at"])
        k = window_of(row)
        if k is not None:
            warned.add(k)
            where = f"window {k}"
        elif row < probation:
            in_probation += 1
            where = "probation"
        else:
            false += 1
            where = "false"
        for e in w["evidence"]:
            hit = window_of(row_of(e["observed_at"]))
            if hit is not None:
                with_signals.add(hit)
        signals += int(w["signal_count"])
        complete = complete and len(w["evidence"]) >= int(w["signal_count"])
        detail.append(
            {
                "id": w["id"],
                "level": w["level"],
                "certainty": w["certainty"],
                "first_signal": f.corpus.timestamp_text[row],
                "row": row,
                "where": where,
                "signal_count": w["signal_count"],
            }
        )
    levels = Counter(str(w["level"]) for w in warnings)
    return FileResult(
        file=f.corpus.name,
        sensor_id=f.sensor_id,
        rows=n,
        windows=len(windows),
        windows_warned=len(warned),
        false_warnings=false,
        probation_warnings=in_probation,
        warnings=len(warnings),
        levels={level: levels[level] for level in LEVELS if levels[level]},
        windows_with_signals=len(with_signals),
        signals=signals,
        evidence_complete=complete,
        detail=detail,
    )


def score(p: Plan, warnings: Sequence[dict[str, Any]]) -> tuple[list[FileResult], dict[str, Any]]:
    """Per-file results and their totals; a warning belongs to the file whose area it names."""
    by_area: dict[str, list[dict[str, Any]]] = {}
    for w in warnings:
        by_area.setdefault(str(w["area"]), []).append(w)
    results = [score_file(f, s, by_area.pop(f.area, [])) for f, s in zip(p.files, p.shifts_s, strict=True)]
    counted = (
        "rows windows windows_warned false_warnings probation_warnings warnings windows_with_signals signals"
    )
    total: dict[str, Any] = {k: sum(getattr(r, k) for r in results) for k in counted.split()}
    levels = Counter[str]()
    for r in results:
        levels.update(r.levels)
    total["levels"] = {level: levels[level] for level in LEVELS if levels[level]}
    total["files"] = len(results)
    total["evidence_complete"] = all(r.evidence_complete for r in results)
    total["warnings_in_no_file"] = sum(len(v) for v in by_area.values())
    return results, total


# ---------------------------------------------------------------------------- running it


@dataclass
class Replay:
    results: list[FileResult]
    total: dict[str, Any]
    plan: Plan
    posted: Posted
    timing_s: dict[str, float]
    exit_code: int
    last_rows_missing: list[str]


@contextlib.contextmanager
def backends(store: str, database: str, root: Path) -> Iterator[dict[str, str]]:
    """Settings for the store and database, their servers started here (a private influxd under
    ``root``, a fresh PostgreSQL database); empty for the service's own defaults (files in ./var).
    ``bench.api`` starts its service on these too."""
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if store == "influxdb":
            server = stack.enter_context(private_influxd(root / "influxd"))
            env[f"{ENV_PREFIX}STORE_URL"] = server.store_url("citywarn")
        if database == "postgresql":
            env[f"{ENV_PREFIX}DATABASE_URL"] = stack.enter_context(fresh_postgres_database())
        yield env


def replay(
    corpus: Sequence[CorpusFile],
    *,
    root: Path,
    store: str = "embedded",
    database: str = "sqlite",
    catch_up_timeout_s: float = CATCH_UP_TIMEOUT_S,
) -> Replay:
    """Start the service in ``root`` on a catalog of ``corpus``, replay, read and count, stop it."""
    timing: dict[str, float] = {}
    started = time.monotonic()
    p = plan(corpus, int(time.time()))
    city = write_city(p.files, root / "city")
    with backends(store, database, root) as backend_env:
        env = {
            f"{ENV_PREFIX}CATALOG_PATH": str(city.catalog),
            f"{ENV_PREFIX}AREAS_PATH": str(city.areas),
            **p.env,
            **backend_env,
        }
        service = RunningService(root, env)
        try:
            service.start()
            timing["start"] = time.monotonic() - started
            with httpx.Client(base_url=service.url, timeout=120, headers=service.headers) as client:
                posted = post_all(client, p)
                timing["post"] = posted.seconds
                mark = time.monotonic()
                missing = wait_caught_up(service, client, p, catch_up_timeout_s)
                timing["catch_up_after_post"] = time.monotonic() - mark
                warnings = read_warnings(client)
        finally:
            exit_code = service.stop()
    results, total = score(p, warnings)
    timing["total"] = time.monotonic() - started
    return Replay(results, total, p, posted, timing, exit_code, missing)


def report(r: Replay) -> dict[str, Any]:
    return {
        "settings": r.plan.env or "defaults",
        "notes": r.plan.notes,
        "ingest": asdict(r.posted),
        "last_rows_missing": r.last_rows_missing,
        "timing_s": {k: round(v, 1) for k, v in r.timing_s.items()},
        "service_exit_code": r.exit_code,
        "total": r.total,
        "files": [asdict(f) for f in r.results],
    }


def _row(name: str, c: dict[str, Any]) -> str:
    levels = " ".join(f"{k}:{v}" for k, v in c["levels"].items()) or "-"
    return (
        f"{name:58} {c['rows']:6} {c['windows']:4} {c['windows_warned']:6} {c['false_warnings']:5} "
        f"{c['probation_warnings']:4} {c['windows_with_signals']:7}  {levels}"
    )


def print_report(r: Replay) -> None:
    for note in r.plan.notes:
        print(f"note: {note}")
    if not r.plan.notes:
        print("settings: the service's defaults (own catalog and areas)")
    p = r.posted
    print(
        f"posted {p.accepted} readings in {p.requests} requests, {p.seconds:.1f} s "
        f"({p.accepted / max(p.seconds, 1e-9):,.0f}/s); refused {p.rejected}, retried {p.retried}"
    )
    for rejection in p.first_rejections:
        print(f"  refused: {rejection}")
    if r.last_rows_missing:
        print(f"last row never stored for: {', '.join(r.last_rows_missing)}")
    print(", ".join(f"{k} {v:.1f} s" for k, v in r.timing_s.items()) + f"; service exit code {r.exit_code}")
    print(f"{'file':58} {'rows':>6} {'win':>4} {'warned':>6} {'false':>5} {'prob':>4} {'sig-win':>7}  levels")
    for f in r.results:
        print(_row(f.file, asdict(f)))
    print(_row(f"total ({r.total['files']} files)", r.total))
    print(
        "win: labelled windows after probation; warned: of those, with a warning opened inside; "
        "false: opened after probation outside every window; prob: opened in probation outside windows; "
        "sig-win: windows with any signal (joined to an open warning or opening one)"
    )
    if not r.total["evidence_complete"]:
        print("sig-win counts only the evidence the API shows (the latest 200 per warning)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="DIR/<category>/<file>.csv")
    ap.add_argument("--labels", type=Path, required=True, help="combined_windows.json")
    ap.add_argument("--files", type=int, help="replay only N files, taken in turn from each category")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    ap.add_argument("--store", choices=["embedded", "influxdb"], default="embedded")
    ap.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--keep", action="store_true", help="keep the service's directory (log, state)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    corpus = sample(load_corpus(args.data, args.labels), args.files)
    root = Path(tempfile.mkdtemp(prefix="citywarn-replay-"))
    try:
        result = replay(corpus, root=root, store=args.store, database=args.database)
    except ServiceFailed as exc:
        print(f"replay failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"service directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(report(result), indent=2))
    return 0 if result.exit_code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
