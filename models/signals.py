"""What a detector run says about one series at one time: the input to warnings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Observation(Protocol):
    """Anything with these attributes can be scored (the store's ``Point`` is one)."""

    @property
    def sensor_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def area(self) -> str: ...
    @property
    def ts_ns(self) -> int: ...
    @property
    def value(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Signal:
    """A detector's finding: score in [0, 1], the warning line crossed (if any), and why.

    ``source`` tells independent evidence apart for fusion: ``sensor`` signals
    carry a ``sensor_id``; ``reports`` signals (bursts of human reports) carry
    the ``report_ids`` behind them and an empty ``sensor_id``.
    """

    sensor_id: str
    kind: str
    area: str
    hazard: str
    ts_ns: int
    value: float
    score: float
    detector: str
    level: str | None = None
    evidence: dict[str, float | str] = field(default_factory=dict)
    source: str = "sensor"
    report_ids: tuple[str, ...] = ()
    # A drill's signal: it never joins or ends a real warning, nor a real signal an exercise one.
    exercise: bool = False
    drill_id: str | None = None
