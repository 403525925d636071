"""The delivery worker: claims due webhook deliveries, posts them signed, records what came of each.

Run as many as you like (threads, ``citywarn deliver`` processes): claims keep them from sending
one attempt twice (``alerts.delivery_store``). A worker killed mid-flight leaves its claims to run
out; the rows are attempted again after the lease, with the same ``webhook-id``, so a receiver that
got the first attempt can drop the second.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import sqlalchemy as sa

from alerts.delivery_store import Backoff, Claimed, DeliveryStore, Outcome
from alerts.signing import signing_secrets, webhook_headers
from alerts.webhook_targets import AttemptResult, Poster
from config.settings import Settings

log = logging.getLogger("citywarn.webhooks")

# A lease outlives an attempt's timeout by this much, for resolving, signing and recording around it.
# It is also how long a killed worker's claims hold their rows back from the other workers.
LEASE_MARGIN_S = 5.0


_LOG_LEVELS = {
    Outcome.DELIVERED: logging.DEBUG,
    Outcome.RETRY: logging.INFO,
    Outcome.FAILED: logging.WARNING,
    Outcome.OVERTAKEN: logging.WARNING,
}


def default_worker_id() -> str:
    """Host, process and a random tail: unique among workers, and says in the attempts where each ran."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


class DeliveryWorker:
    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        *,
        worker_id: str,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self.store = DeliveryStore(engine)
        self.settings = settings
        self.worker_id = worker_id
        self.clock = clock
        self.rng = rng or random.Random()
        self.backoff = Backoff(
            schedule=settings.webhook_retry_schedule,
            disable_after_failures=settings.webhook_disable_after_failures,
            disable_after_s=settings.webhook_disable_after_s,
        )
        self.lease = timedelta(seconds=settings.webhook_timeout_s + LEASE_MARGIN_S)
        # One claim per thread: a pass then lasts about one attempt at most, well inside the lease.
        self.batch = settings.webhook_concurrency
        self._poster = Poster()
        self._pool = ThreadPoolExecutor(
            settings.webhook_concurrency, thread_name_prefix=f"webhook-{worker_id}"
        )

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; a pass that found work is followed by another at once.

        A failed pass (the database unreachable, say) is logged and tried again after the poll
        interval: claims not recorded run out and are attempted again.
        """
        try:
            while not stop.is_set():
                try:
                    worked = self.deliver_due(self.clock()) > 0
                except Exception:
                    log.exception("delivery pass failed; trying again in %s s", self.settings.webhook_poll_s)
                    worked = False
                if not worked:
                    stop.wait(self.settings.webhook_poll_s)
        finally:
            self.close()

    def deliver_due(self, now: datetime) -> int:
        """One pass: claim what is due at ``now``, post it all concurrently, record each; how many."""
        claimed = self.store.claim(now=now, worker=self.worker_id, limit=self.batch, lease=self.lease)
        if claimed:
            list(self._pool.map(self._attempt, claimed))
        return len(claimed)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._poster.close()

    def _attempt(self, claimed: Claimed) -> Outcome:
        started_at = self.clock()
        secrets = signing_secrets(
            claimed.secret, claimed.previous_secret, claimed.previous_secret_until, at=started_at
        )
        headers = webhook_headers(claimed.message_id, claimed.payload, secrets=secrets, at=started_at)
        try:
            result = self._poster.post(
                claimed.url,
                claimed.payload.encode(),
                headers,
                timeout_s=self.settings.webhook_timeout_s,
                allow_private=self.settings.webhook_allow_private,
            )
        except Exception as e:  # a bug must cost one attempt, not the worker
            log.exception("delivery %s: the attempt raised", claimed.delivery_id)
            result = AttemptResult(None, 0.0, f"{type(e).__name__}: {e}", "")
        outcome = self.store.record(
            claimed, result, started_at=started_at, now=self.clock(), backoff=self.backoff, rng=self.rng
        )
        log.log(
            _LOG_LEVELS[outcome],
            "delivery %s (%s, %s) attempt %d to subscription %s: %s -> %s",
            claimed.delivery_id,
            claimed.event_type,
            claimed.message_id,
            claimed.attempts + 1,
            claimed.subscription_id,
            result.status_code if result.status_code is not None else result.error,
            outcome.value,
        )
        return outcome
