"""Advancing many warnings reads their change times and evidence in one query each; the rows are
exactly those the one-warning reads return, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from alerts.repository import Settled
from alerts.service import EVIDENCE_SCANNED, WarningService
from tests.factories import NOW, signal


def test_many_warnings_read_at_once_match_one_at_a_time(service: WarningService) -> None:
    minute = timedelta(minutes=1)
    signals = [
        signal(
            level="red" if i % 3 == 2 else "yellow",
            ts=NOW + i * minute,
            sensor_id=f"wl-riverside-0{i % 2 + 1}",
        )
        for i in range(12)
    ]
    signals += [
        signal(area="g-riverside-03", sensor_id="wl-riverside-02", ts=NOW + i * minute, level="orange")
        for i in range(5)
    ]
    signals.append(signal(hazard="gas_leak", kind="gas", sensor_id="gas-oldtown-01", area="g-oldtown-01"))
    ids = sorted(set(service.apply_signals(signals, now=NOW, actor="a")))
    assert len(ids) == 3
    # Each warning read from its own time, some before and some within its rows.
    since = {wid: NOW + (n - 1) * minute for n, wid in enumerate(ids)}
    with service.repository.writing() as tx:
        changes = tx.change_times_of(since)
        evidence = tx.evidence_since_of(since, limit=EVIDENCE_SCANNED)
        two_newest = tx.evidence_since_of(since, limit=2)
        for wid, at in since.items():
            assert changes[wid] == tx.change_times(wid, since=at)
            one = tx.evidence_since(wid, since=at, limit=EVIDENCE_SCANNED)
            assert evidence[wid] == one
            assert two_newest[wid] == tx.evidence_since(wid, since=at, limit=2)
        for wid in ids:  # each warning's own time bounds its rows, not the earliest asked for
            later = {**dict.fromkeys(ids, NOW - minute), wid: NOW + 30 * minute}
            assert tx.change_times_of(later)[wid] == tx.change_times(wid, since=later[wid]) == []
            assert tx.evidence_since_of(later, limit=EVIDENCE_SCANNED)[wid] == []
        assert tx.change_times_of({}) == {} and tx.evidence_since_of({}, limit=1) == {}
    assert any(changes.values())  # the red signals escalated: there are change times to compare
    assert sum(map(len, evidence.values())) > sum(map(len, two_newest.values())) > 2


def test_a_settled_read_keeps_every_later_row_and_the_newest_before(service: WarningService) -> None:
    """``Settled``: rows after its instant all, at or before it only the newest few; alone or batched,
    on SQLite and PostgreSQL. A read with a smaller limit from a later time is the prefix of a wider
    read filtered to that time (what ``_refresh`` relies on)."""
    minute = timedelta(minutes=1)
    sensors = ("wl-riverside-01", "wl-riverside-02")
    signals = [signal(ts=NOW + (i // 2) * minute, sensor_id=sensors[i % 2]) for i in range(24)]
    (wid,) = set(service.apply_signals(signals, now=NOW, actor="a"))
    at = NOW + 6 * minute
    with service.repository.writing() as tx:
        everything = tx.evidence_since(wid, since=NOW, limit=EVIDENCE_SCANNED)
        settled = tx.evidence_since(wid, since=NOW, limit=EVIDENCE_SCANNED, settled=Settled(at, 3))
        batched = tx.evidence_since_of({wid: NOW}, limit=EVIDENCE_SCANNED, settled={wid: Settled(at, 3)})
        later = tx.evidence_since(wid, since=at, limit=4)
    assert len(everything) == 24
    assert [e.observed_at for e in everything] == sorted((e.observed_at for e in everything), reverse=True)
    after = [e for e in everything if e.observed_at > at]
    assert settled == batched[wid] == after + [e for e in everything if e.observed_at <= at][:3]
    assert len(after) == 10 and len(settled) == 13
    assert later == [e for e in everything if e.observed_at >= at][:4]
