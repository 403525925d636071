"""Sums of samples from a ``/metrics`` page, for the benches that read a running service's counters."""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client.parser import text_string_to_metric_families


def sample_sums(text: str, names: Collection[str], *, by: str | None = None) -> dict[tuple[str, str], float]:
    """The samples named in ``names``, summed by name and, with ``by``, by that label's value.

    Keys are (sample name, label value); without ``by``, or for a sample without the label, the
    value is "". A name with no sample on the page has no key, so a caller can tell "not served
    yet" from zero.
    """
    sums: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                key = (sample.name, sample.labels.get(by, "") if by else "")
                sums[key] = sums.get(key, 0.0) + sample.value
    return sums
