"""The benches' reading of a ``/metrics`` page, on a page prometheus-client itself renders."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from bench.metrics_text import sample_sums


def page() -> str:
    registry = CollectorRegistry()
    stored = Counter("citywarn_ingest_stored", "stored", ["stream"], registry=registry)
    stored.labels(stream="readings").inc(5)
    stored.labels(stream="reports").inc(2)
    lag = Gauge("citywarn_consumer_lag_messages", "lag", ["stream", "partition"], registry=registry)
    lag.labels(stream="readings", partition="0").set(7)
    lag.labels(stream="readings", partition="1").set(3)
    lag.labels(stream="reports", partition="0").set(1)
    Counter("citywarn_series_restored", "restored", registry=registry).inc(120)
    return generate_latest(registry).decode()


def test_samples_are_summed_by_name_and_by_the_label_asked_for() -> None:
    names = {"citywarn_consumer_lag_messages", "citywarn_ingest_stored_total"}
    sums = sample_sums(page(), names, by="stream")
    assert sums == {
        ("citywarn_consumer_lag_messages", "readings"): 10.0,
        ("citywarn_consumer_lag_messages", "reports"): 1.0,
        ("citywarn_ingest_stored_total", "readings"): 5.0,
        ("citywarn_ingest_stored_total", "reports"): 2.0,
    }


def test_without_a_label_a_name_is_one_sum_and_a_counters_created_time_is_not_counted() -> None:
    sums = sample_sums(page(), {"citywarn_series_restored_total", "citywarn_ingest_stored_total"})
    assert sums == {("citywarn_series_restored_total", ""): 120.0, ("citywarn_ingest_stored_total", ""): 7.0}


def test_a_name_not_on_the_page_has_no_key() -> None:
    assert sample_sums(page(), {"citywarn_restore_seconds_total"}) == {}
