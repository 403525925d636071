"""District and city roll-up: grid warnings of one hazard raise a district warning, districts a city one.

The rule, one scope up at a time (grid -> district -> city):

- **Raise** a roll-up warning when at least ``RAISE_AT`` (2) areas of the scope below have a live
  warning of the hazard, or any one of them is red. One grid's incident is that grid's business;
  two grids at once, or one at the top of the scale, are the district's. The same holds for
  districts and the city.
- **Keep** it while any member is live, at the level of the highest live member (so it
  de-escalates as members calm down or resolve), and **resolve** it when none is: once raised, the
  EOC that took it on is told when it is over, not when it dips under the raising rule (which
  would make a district warning flap with its second grid).
- **Live** means active or acknowledged. A pending warning has not yet held its condition for the
  hazard's hold time; counting it would let a district warning skip the very check that keeps a
  grid's momentary blip from reaching anyone.
- Drills stay apart: exercise warnings roll up only into exercise roll-ups, real ones into real.

A roll-up warning has no evidence of its own: it references its members (their ``parent_id`` is its
id), covers every area they cover, and its explanation lists them by place and level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from alerts.levels import rank
from config.areas import AreaIndex

RAISE_AT = 2  # live members (areas) that make a roll-up warning
RAISES_ALONE = "red"  # the level at which one member alone raises it
LIVE = frozenset({"active", "acknowledged"})
# The areas file has no area for the whole city (its districts have no parent): the city's
# roll-up warnings take this id as their area.
CITY_AREA = "city"


@dataclass(frozen=True, slots=True)
class Member:
    """A warning one scope down, as a roll-up reads it."""

    id: str
    area: str
    level: str
    status: str
    covers: tuple[str, ...]
    certainty: str
    confidence: float
    first_signal_at: datetime
    last_signal_at: datetime


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the roll-up warning must be: its level, the members it references and the areas it covers."""

    level: str
    members: tuple[Member, ...]
    covers: tuple[str, ...]

    @property
    def leader(self) -> Member:
        """The member that sets the level (the most confident, then the latest, among the highest)."""
        return max(self.members, key=lambda m: (rank(m.level), m.confidence, m.last_signal_at, m.id))


def raises(members: Iterable[Member]) -> bool:
    """True when these live members are enough to raise a roll-up warning that is not open yet."""
    live = [m for m in members if m.status in LIVE]
    return len({m.area for m in live}) >= RAISE_AT or any(m.level == RAISES_ALONE for m in live)


def verdict(members: Sequence[Member], *, already_open: bool) -> Verdict | None:
    """The roll-up warning these members call for, or None: none should be open (resolve an open one)."""
    live = tuple(sorted((m for m in members if m.status in LIVE), key=lambda m: (m.area, m.id)))
    if not live or (not already_open and not raises(live)):
        return None
    level = max((m.level for m in live), key=rank)
    covers = sorted({a for m in live for a in (*m.covers, m.area)})
    return Verdict(level=level, members=live, covers=tuple(covers))


def district_of(areas: AreaIndex, area: str) -> str | None:
    """The district a grid warning rolls up into: its grid's district, or the area itself when the
    evidence lay in a district outside any grid; None for an area the city does not know."""
    found = areas.area(area)
    if found is None:
        return None
    return found.parent if found.level == "grid" else found.id
