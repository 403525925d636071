"""Playbooks: what the city has agreed to do for each hazard at each warning level."""

from __future__ import annotations

import string
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.assets import AssetKind
from config.catalog import LEVELS, SENSOR_FAULT, Level
from config.yaml_docs import load_yaml

# What a sensor_fault action may name, filled in for each faulty sensor (alerts.sensor_faults):
# "Inspect sensor {sensor} at {place}; last good reading {last_good}". Other hazards' warnings are
# about an area, not one thing in it, so their actions are plain text.
SENSOR_FAULT_FIELDS = frozenset({"sensor", "place", "last_good"})


class PlaybookAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(min_length=1)
    who: str = Field(min_length=1)
    within_minutes: int = Field(gt=0)
    # The kind of asset the action is about: its recommendation names the register's assets of this
    # kind inside the warning's area, else the nearest one (alerts.recommendations).
    asset: AssetKind | None = None


class Playbooks(BaseModel):
    """``hazards[hazard][level]``: the actions, cumulative from blue upward.

    Levels are the four colours only: a misspelt level would otherwise hold
    actions that no warning ever recommends.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hazards: dict[str, dict[Level, list[PlaybookAction]]]

    @model_validator(mode="after")
    def _known_fields(self) -> Playbooks:
        """A misspelt ``{field}`` would reach the maintenance team as it stands."""
        for hazard, by_level in self.hazards.items():
            allowed = SENSOR_FAULT_FIELDS if hazard == SENSOR_FAULT else frozenset()
            for level, actions in by_level.items():
                for a in actions:
                    try:
                        named = {f for _, f, _, _ in string.Formatter().parse(a.action) if f is not None}
                    except ValueError as exc:
                        raise ValueError(f"{hazard}.{level}: {a.action!r}: {exc}") from None
                    unknown = sorted(named - allowed)
                    if unknown:
                        may = ", ".join(sorted(allowed)) or "none"
                        raise ValueError(f"{hazard}.{level}: {a.action!r} names {unknown}; allowed: {may}")
        return self

    def actions_for(self, hazard: str, level: str) -> list[PlaybookAction]:
        """Every action at this level and below: a red flood still needs the orange steps."""
        by_level = self.hazards.get(hazard, {})
        upto = LEVELS[: LEVELS.index(level) + 1]
        return [a for lvl in upto for a in by_level.get(lvl, [])]


def load_playbooks(path: Path) -> Playbooks:
    with path.open(encoding="utf-8") as f:
        return Playbooks.model_validate(load_yaml(f))
