"""Integrators' webhook subscriptions as the code sees them: filters, signing secrets, rotation. Pure.

A subscription's secret is citywarn's to make, in the Standard Webhooks form (``whsec_`` and the
base64 of 32 random bytes), so no integrator can pick a weak one. Rotating it keeps the old secret
signing beside the new one for a grace period: an integrator deploys the new secret at its own
pace and no delivery in between fails its check. A second rotation within the grace drops the
oldest secret, so at most two ever sign.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import get_args

from alerts import signing
from alerts.webhook_payloads import EventType
from config.catalog import Level

# The events a subscription may ask for (an empty ``event_types`` asks for them all): the payloads'
# types, named once in alerts.webhook_payloads (EventType is a union of Literals; each gives its names).
EVENT_TYPES: tuple[str, ...] = tuple(name for member in get_args(EventType) for name in get_args(member))
# Sent only by POST /v1/subscriptions/{id}/test, whatever the filters say.
PING = "ping"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` + base64 of 32 bytes from the OS's CSPRNG."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


@dataclass(frozen=True, slots=True)
class Filters:
    """Which events a subscription hears; an empty tuple (or no ``min_level``) matches everything.

    ``areas`` each include their sub-areas; ``min_level`` is met by the level before or after a
    change, so a red subscription also hears its warning step down from red.
    """

    event_types: tuple[str, ...] = ()
    hazards: tuple[str, ...] = ()
    min_level: Level | None = None
    areas: tuple[str, ...] = ()
    include_exercises: bool = False

    def __post_init__(self) -> None:
        unknown = [t for t in self.event_types if t not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    owner: str  # the API key id that created it: only that key (and admins) may see it
    owner_label: str
    url: str
    description: str
    filters: Filters
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    failures: int
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    def previous_valid_until(self, at: datetime) -> datetime | None:
        """Until when the secret before the last rotation still signs; None if it no longer does."""
        return self.previous_secret_until if len(self.signing_secrets(at)) > 1 else None

    def signing_secrets(self, at: datetime) -> list[str]:
        """The secrets that sign a delivery made at ``at``, by ``alerts.signing``'s rule."""
        return signing.signing_secrets(self.secret, self.previous_secret, self.previous_secret_until, at=at)


def rotated(sub: Subscription, *, now: datetime, grace: timedelta) -> Subscription:
    """A new current secret; the one it replaces keeps signing until ``now + grace``."""
    return replace(
        sub,
        secret=new_secret(),
        previous_secret=sub.secret,
        previous_secret_until=now + grace,
        updated_at=now,
    )
