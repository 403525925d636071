"""Per-key rate limits on the maintained ``limits`` library: past a bucket's limit, 429 with Retry-After.

``app.auth.deps.require`` counts every secured request in one of three buckets,
each with its own limits (settings ``rate_limit_*``): ``ingest`` per ingest key,
``api`` per key for everything else, ``anonymous`` per client address for failed
authentications. Ingest is apart so that a gateway flooding readings uses up its
own allowance, never an operator's.

The moving window counts each request at its own time, so no burst across a
window's edge gets twice the allowance; a refused request is not counted, so a
client that keeps retrying is let in again as soon as its oldest request leaves
the window, the time Retry-After gives. The counts live where
``rate_limit_storage_uri`` says: in this process (``memory://``) or in a Redis
that every API process shares. If that storage fails, requests pass: a Redis
outage must not lock the EOC out of its own warnings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

from fastapi import HTTPException
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from config.settings import Settings

log = logging.getLogger(__name__)

COUNTED = {
    "ingest": "requests with this ingest key",
    "api": "requests with this key",
    "anonymous": "failed authentications from this address",
}

NAMESPACE = "citywarn"  # first part of every storage key, so a shared Redis can hold other counts too


class RateLimiter:
    """What ``app.state.rate_limiter`` holds: ``hit`` once per request, before it is answered."""

    def __init__(self, limits: Mapping[str, str], storage_uri: str) -> None:
        self._limits: dict[str, list[RateLimitItem]] = {
            bucket: parse_many(text) for bucket, text in limits.items()
        }
        self._window = MovingWindowRateLimiter(storage_from_string(storage_uri, wrap_exceptions=True))
        self._storage_failing = False

    def hit(self, bucket: str, identity: str) -> None:
        """Count one request of ``identity`` (a key id, or a client address) in ``bucket``.

        Raises HTTPException(429) with ``Retry-After`` (whole seconds, at least 1) when any
        of the bucket's limits is used up; the refused request itself is not counted.
        """
        items = self._items(bucket)
        try:
            refused = [item for item in items if not self._window.test(item, NAMESPACE, bucket, identity)]
            if not refused:
                # Another request may have taken the last unit since the test; hit says so, atomically.
                refused = [item for item in items if not self._window.hit(item, NAMESPACE, bucket, identity)]
            wait = max((self._seconds_until_free(item, bucket, identity) for item in refused), default=0)
        except StorageError as failure:
            self._storage_down(failure)
            return
        self._storage_up()
        if refused:
            allowed = "; ".join(str(item) for item in items)
            raise HTTPException(
                429,
                detail=f"too many {COUNTED.get(bucket, bucket)} (allowed: {allowed}); retry after {wait} s",
                headers={"Retry-After": str(wait)},
            )

    def remaining(self, bucket: str, identity: str) -> list[int]:
        """What each of the bucket's limits has left for ``identity``, in the order they were given."""
        return [
            self._window.get_window_stats(item, NAMESPACE, bucket, identity).remaining
            for item in self._items(bucket)
        ]

    def _items(self, bucket: str) -> list[RateLimitItem]:
        try:
            return self._limits[bucket]
        except KeyError:
            raise ValueError(f"no rate limit bucket {bucket!r}; known: {', '.join(self._limits)}") from None

    def _seconds_until_free(self, item: RateLimitItem, bucket: str, identity: str) -> int:
        """When the oldest counted request leaves the window, freeing one unit, rounded up."""
        reset_at = self._window.get_window_stats(item, NAMESPACE, bucket, identity).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def _storage_down(self, failure: StorageError) -> None:
        if not self._storage_failing:
            self._storage_failing = True
            log.warning(
                "rate limit storage failed (%s): requests are not limited until it answers again",
                failure.storage_error,
            )

    def _storage_up(self) -> None:
        if self._storage_failing:
            self._storage_failing = False
            log.warning("rate limit storage answers again: requests are limited")


def build_rate_limiter(settings: Settings) -> RateLimiter | None:
    """The limiter the settings describe, or None when they turn rate limits off."""
    if not settings.rate_limits_enabled:
        return None
    limits = {
        "ingest": settings.rate_limit_ingest,
        "api": settings.rate_limit_api,
        "anonymous": settings.rate_limit_anonymous,
    }
    return RateLimiter(limits, settings.rate_limit_storage_uri)
