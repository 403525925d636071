"""The walk reads only the newest rows before a warning's clock (``repository.Settled``), and that
changes nothing it decides: random incidents walked with and without the cap leave the same warnings,
histories and explanations (real SQLite). The cap is shrunk to 3 rows so it binds on short incidents."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from alerts import db
from alerts import service as service_module
from alerts.repository import Settled, _SqlWriter
from alerts.service import WarningService
from tests.factories import CATALOG, NOW, PLAYBOOKS, signal

AREA = "g-riverside-01"
SENSORS = ("wl-riverside-01", "wl-riverside-02", "wl-riverside-03")
LEVEL = st.sampled_from(["blue", "yellow", "orange", "red", None])
# A batch: up to four signals, each from one of three gauges, spread over a few minutes.
BATCH = st.lists(
    st.tuples(st.sampled_from(SENSORS), LEVEL, st.floats(0.5, 0.999), st.integers(0, 5)),
    min_size=1,
    max_size=4,
)
STEP = st.one_of(
    st.tuples(st.just("signals"), st.integers(0, 40), BATCH),
    st.tuples(st.just("advance"), st.integers(1, 120), st.just([])),
)


def _uncapped(at: datetime, rows: int) -> Settled:
    return Settled(at, 10**9)


@contextmanager
def _service() -> Iterator[WarningService]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.connect(f"sqlite:///{tmp}/state.sqlite3")
        try:
            yield WarningService(engine, catalog=CATALOG, playbooks=PLAYBOOKS)
        finally:
            engine.dispose()


def _outcome(steps: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Every warning the steps leave, as an operator sees it: state, explanation and history."""
    with _service() as service:
        clock = NOW
        for kind, minutes, batch in steps:
            clock += timedelta(minutes=minutes)
            if kind == "advance":
                service.advance({AREA: clock}, now=NOW)
                continue
            signals = [
                signal(
                    sensor_id=s, level=level, score=score, value=2.0 + score, ts=clock + timedelta(minutes=m)
                )
                for s, level, score, m in batch
            ]
            service.apply_signals(sorted(signals, key=lambda s: s.ts_ns), now=NOW, actor="d")
        out = []
        for w in sorted(service.list(limit=500).items, key=lambda w: w.first_signal_at):
            detail = service.get(w.id)
            assert detail is not None
            events = [
                (e.action, e.from_status, e.to_status, e.to_level, e.event_time, e.note)
                for e in detail.events
            ]
            out.append(
                (w.status, w.level, w.clock_at, w.below_since, w.flapping, w.certainty, w.explanation, events)
            )
        return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=2, max_size=14))
def test_the_settled_cap_changes_no_warning(steps: list[tuple[Any, ...]]) -> None:
    with mock.patch.object(service_module, "EVIDENCE_FUSED", 3):
        capped = _outcome(steps)
        with mock.patch.object(service_module, "Settled", _uncapped):
            uncapped = _outcome(steps)
    for mine, theirs in zip(capped, uncapped, strict=False):
        for part, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            if a != b:
                note(f"part {part}:\n capped   {a}\n uncapped {b}")
    assert capped == uncapped


def test_a_long_incident_reads_a_bounded_window() -> None:
    """The rows a batch reads stop growing with its incident: 1,200 rows of one warning, and the
    last batches read at most the fused window before the clock plus their own 20 rows each time
    (without the cap every read returned every row in the release window)."""
    sizes: list[int] = []
    real = _SqlWriter.evidence_since_of

    def counting(self: _SqlWriter, *args: Any, **kwargs: Any) -> dict[str, list[Any]]:
        found = real(self, *args, **kwargs)
        sizes.append(max(map(len, found.values()), default=0))
        return found

    with _service() as service, mock.patch.object(_SqlWriter, "evidence_since_of", counting):
        clock = NOW
        for n in range(60):
            clock += timedelta(seconds=30)
            batch = [
                signal(sensor_id=s, level="yellow", score=0.9, ts=clock + timedelta(seconds=j))
                for j in range(7)
                for s in SENSORS
            ][:20]
            if n == 50:
                sizes.clear()
            service.apply_signals(batch, now=NOW, actor="d")
            service.advance({AREA: clock + timedelta(seconds=10)}, now=NOW)
        assert len(service.list(limit=10).items) == 1
    assert sizes and max(sizes) <= service_module.EVIDENCE_FUSED + 20, max(sizes)
