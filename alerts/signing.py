"""Standard Webhooks signatures on each delivery attempt, so integrators can prove it came from citywarn.

The signing is the ``standardwebhooks`` package's (the specification's reference implementation),
not our own HMAC. Each attempt is signed at its own time: receivers refuse timestamps more than a
few minutes off, so a retry hours later must not carry the first attempt's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

from config.timeutil import as_utc

USER_AGENT = "citywarn-webhooks/1 (+Standard Webhooks)"


def signing_secrets(
    secret: str, previous_secret: str | None, previous_secret_until: datetime | None, *, at: datetime
) -> list[str]:
    """The secrets that sign at ``at``: the current one, and the one it replaced while in its grace."""
    if previous_secret and previous_secret_until is not None and as_utc(previous_secret_until) > as_utc(at):
        return [secret, previous_secret]
    return [secret]


def webhook_headers(message_id: str, payload: str, *, secrets: Sequence[str], at: datetime) -> dict[str, str]:
    """The headers of one attempt to send ``payload`` (its exact text) as ``message_id``.

    With several secrets, ``webhook-signature`` carries one signature each, space-separated, as the
    specification allows: a receiver holding either secret finds one that verifies.
    """
    if not secrets:
        raise ValueError("a delivery needs at least one signing secret")
    at = as_utc(at)
    signatures = [Webhook(secret).sign(message_id, at, payload) for secret in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
