"""How long a warning's condition must hold, and be gone, before its status or level moves; and who
is told next when nobody acknowledges it (config/city/lifecycle.yaml, read by alerts.lifecycle).

Durations are in minutes of event time (the readings' own clock), except the escalation chain's
``ack_within`` and ``stale_after``, which are wall-clock minutes: nobody acknowledging is a fact of
the operators' time, not the sensors'.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.catalog import LEVELS, Level
from config.yaml_docs import load_yaml

# The decision step's reminder interval (models/decision.py DecisionRule.repeat_s; a test keeps the two
# equal): while a line is held the detector re-signals this often, so a release window shorter than
# it would let a warning de-escalate between two reminders of the very line it holds.
REMINDER_INTERVAL_MIN = 15.0


class HazardTiming(BaseModel):
    """One hazard's clock: ``hold`` before pending becomes active, ``release`` below the line before a
    level down or resolve, and ``flap_changes`` changes within ``flap_window`` mark it flapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: float = Field(ge=0)
    release: float = Field(gt=0)
    flap_window: float = Field(gt=0)
    flap_changes: int = Field(ge=2)

    @property
    def hold_time(self) -> timedelta:
        return timedelta(minutes=self.hold)

    @property
    def release_time(self) -> timedelta:
        return timedelta(minutes=self.release)

    @property
    def flap_time(self) -> timedelta:
        return timedelta(minutes=self.flap_window)


class HazardOverride(BaseModel):
    """What a hazard changes of the defaults; the rest it takes from them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: float | None = Field(default=None, ge=0)
    release: float | None = Field(default=None, gt=0)
    flap_window: float | None = Field(default=None, gt=0)
    flap_changes: int | None = Field(default=None, ge=2)


class LifecycleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: HazardTiming
    hazards: dict[str, HazardOverride] = {}
    chain: list[str] = Field(min_length=1)  # responders, first told first
    ack_within: dict[Level, float | None]  # wall minutes per level before the next tier; None: never
    stale_after: float = Field(gt=0)  # wall minutes without change before a warning says its clock stopped

    @model_validator(mode="after")
    def _every_level(self) -> LifecycleConfig:
        missing = [lvl for lvl in LEVELS if lvl not in self.ack_within]
        if missing:
            raise ValueError(f"ack_within needs every level; missing {missing}")
        if len(set(self.chain)) != len(self.chain):
            raise ValueError("chain names a responder twice")
        return self

    def timing(self, hazard: str) -> HazardTiming:
        override = self.hazards.get(hazard)
        if override is None:
            return self.defaults
        return self.defaults.model_copy(update=override.model_dump(exclude_none=True))

    def ack_time(self, level: str) -> timedelta | None:
        minutes = self.ack_within.get(level)  # type: ignore[call-overload]
        return None if minutes is None else timedelta(minutes=minutes)


def lifecycle_problems(config: LifecycleConfig) -> list[tuple[str, str]]:
    """(where, problem) for timings that load but cannot work: a release no longer than the detector's
    reminder interval ends a warning between two reminders of the line it still holds."""
    problems = []
    timings = {"defaults": config.defaults} | {f"hazards[{h}]": config.timing(h) for h in config.hazards}
    for where, t in timings.items():
        if t.release <= REMINDER_INTERVAL_MIN:
            problems.append(
                (
                    f"{where}.release",
                    f"{t.release:g} min must exceed the detector's reminder interval "
                    f"({REMINDER_INTERVAL_MIN:g} min), or a held line lapses between reminders",
                )
            )
    return problems


def load_lifecycle(path: Path) -> LifecycleConfig:
    with path.open(encoding="utf-8") as f:
        return LifecycleConfig.model_validate(load_yaml(f))
