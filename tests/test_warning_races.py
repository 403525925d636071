"""Concurrent writers on one warning, with real threads, on SQLite and the real PostgreSQL.

An EOC has several operators and several consumers: two resolves of one
warning, or two signal batches for one (hazard, area), can arrive in the same
millisecond. The database, not luck, must decide who wins.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import TypeVar

import pytest

from alerts.exceptions import InvalidTransition
from alerts.service import WarningService
from tests.factories import NOW, signal

T = TypeVar("T")


def all_at_once(calls: list[Callable[[], T]]) -> list[T | Exception]:
    """Run every call in its own thread, released together by a barrier; results or errors, in order."""
    barrier = threading.Barrier(len(calls), timeout=30)

    def run(call: Callable[[], T]) -> T | Exception:
        barrier.wait()
        try:
            return call()
        except Exception as exc:  # the test inspects what each caller got
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls, timeout=60))


def test_of_30_concurrent_resolves_exactly_one_succeeds(service: WarningService) -> None:
    [wid] = service.apply_signals([signal()], now=NOW, actor="detector")
    later = NOW + timedelta(minutes=10)

    def resolve(i: int) -> Callable[[], object]:
        return lambda: service.resolve(wid, now=later, actor=f"operator {i}")

    outcomes = all_at_once([resolve(i) for i in range(30)])

    failures = [o for o in outcomes if isinstance(o, Exception)]
    assert len(outcomes) - len(failures) == 1
    assert all(isinstance(f, InvalidTransition) for f in failures), {type(f) for f in failures}
    w = service.get(wid)
    assert w is not None and w.status == "resolved"
    assert [e.action for e in w.events].count("resolved") == 1


def test_concurrent_acknowledge_and_resolve_record_a_consistent_history(service: WarningService) -> None:
    [wid] = service.apply_signals([signal()], now=NOW, actor="detector")
    later = NOW + timedelta(minutes=10)
    calls: list[Callable[[], object]] = [
        lambda: service.acknowledge(wid, now=later, actor="ack"),
        lambda: service.resolve(wid, now=later, actor="res"),
    ] * 5
    all_at_once(calls)
    w = service.get(wid)
    assert w is not None and w.status == "resolved"
    # Each event starts where the previous one ended: no transition was made from a stale status.
    statuses = [(e.from_status, e.to_status) for e in w.events]
    for (_, before), (after, _) in itertools.pairwise(statuses):
        assert before == after, statuses
    assert [e.action for e in w.events].count("resolved") == 1


@pytest.mark.parametrize("already_open", [True, False], ids=["open-warning", "no-warning-yet"])
def test_two_concurrent_batches_end_at_the_higher_level(service: WarningService, already_open: bool) -> None:
    """Whichever batch commits last, a level raised by the other is never lowered."""
    for round_ in range(12):
        area = f"g-race-{round_:02d}"
        if already_open:
            service.apply_signals([signal(area=area, level="blue")], now=NOW, actor="seed")
        t = NOW + timedelta(minutes=1)
        red = signal(area=area, level="red", sensor_id="wl-a", ts=t)
        yellow = signal(area=area, level="yellow", sensor_id="wl-b", ts=t)
        outcomes = all_at_once(
            [
                partial(service.apply_signals, [red], now=t, actor="consumer-1"),
                partial(service.apply_signals, [yellow], now=t, actor="consumer-2"),
            ]
        )
        assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
        page = service.list(area=area)
        assert page.total == 1, f"round {round_}: {page.total} warnings"
        w = service.get(page.items[0].id)
        assert w is not None
        assert (w.level, w.severity, w.signal_count) == ("red", "Extreme", 2 + already_open), round_
        # The history agrees with the row: recorded levels only rise, and end where the warning is.
        levels = [("blue", "yellow", "orange", "red").index(e.to_level) for e in w.events]
        assert levels == sorted(levels) and levels[-1] == 3, [(e.action, e.to_level) for e in w.events]


def test_two_writers_locking_warnings_in_opposite_orders_both_commit(service: WarningService) -> None:
    """A signal batch locks the warnings it joins in the order it meets them; the lifecycle locks in id
    order; neighbour fusion crosses workers' areas. Row locks alone let two such writers deadlock
    (PostgreSQL failed one after a second, its retry could meet the next): writers go one at a time."""
    [first] = service.apply_signals([signal(area="g-lock-a", sensor_id="wl-a")], now=NOW, actor="seed")
    [second] = service.apply_signals([signal(area="g-lock-b", sensor_id="wl-b")], now=NOW, actor="seed")
    held: list[tuple[str, str]] = []

    def lock(one: str, other: str) -> Callable[[], None]:
        def run() -> None:
            with service.repository.writing() as tx:
                assert tx.locked(one) is not None
                time.sleep(0.3)  # long enough for the other writer to lock its first
                assert tx.locked(other) is not None
                held.append((one, other))

        return run

    outcomes = all_at_once([lock(first, second), lock(second, first)])
    assert outcomes == [None, None], outcomes
    assert sorted(held) == sorted([(first, second), (second, first)])
