"""The five roles and who may do what, in one table a reader can check at a glance.

Roles are not a ladder: an ``ingest`` key reads nothing and an ``integrator``
acts on no warning, so a leaked gateway or district-system key does the least
harm it can. What a route needs is a ``Permission``; each role holds a set.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    INTEGRATOR = "integrator"
    INGEST = "ingest"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"  # warnings, areas, sensors, series, reports
    READ_WARNINGS = "read_warnings"  # warnings only: what an integrator may read
    ACT = "act"  # acknowledge, annotate, resolve, silence, act on recommendations
    INGEST = "ingest"  # post readings and reports
    SUBSCRIBE = "subscribe"  # manage its own webhook subscriptions
    ADMINISTER = "administer"  # keys, sensors, every integrator's subscriptions
    DRILL = "drill"  # start and stop drills: exercise warnings in the live warning service


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ, Permission.READ_WARNINGS}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.READ_WARNINGS, Permission.ACT, Permission.DRILL}),
    Role.INTEGRATOR: frozenset({Permission.READ_WARNINGS, Permission.SUBSCRIBE}),
    Role.INGEST: frozenset({Permission.INGEST}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as its API key says: ``label`` is the actor every change it makes is recorded under."""

    key_id: str
    label: str
    role: Role

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]
