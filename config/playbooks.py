"""Playbooks: what the city has agreed to do for each hazard at each warning level."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from config.catalog import LEVELS, Level


class PlaybookAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(min_length=1)
    who: str = Field(min_length=1)
    within_minutes: int = Field(gt=0)


class Playbooks(BaseModel):
    """``hazards[hazard][level]``: the actions, cumulative from blue upward.

    Levels are the four colours only: a misspelt level would otherwise hold
    actions that no warning ever recommends.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hazards: dict[str, dict[Level, list[PlaybookAction]]]

    def actions_for(self, hazard: str, level: str) -> list[PlaybookAction]:
        """Every action at this level and below: a red flood still needs the orange steps."""
        by_level = self.hazards.get(hazard, {})
        upto = LEVELS[: LEVELS.index(level) + 1]
        return [a for lvl in upto for a in by_level.get(lvl, [])]


def load_playbooks(path: Path) -> Playbooks:
    with path.open(encoding="utf-8") as f:
        return Playbooks.model_validate(yaml.safe_load(f))
