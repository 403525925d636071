"""The delivery worker: claims due webhook deliveries, posts them signed, records what came of each.

Run as many as you like (threads, ``citywarn deliver`` processes): claims keep them from sending
one attempt twice (``alerts.delivery_store``). A worker killed mid-flight leaves its claims to run
out; the rows are attempted again after the lease, with the same ``webhook-id``, so a receiver that
got the first attempt can drop the second.

A worker refills each of its slots as soon as the attempt in it ends, and gives no one subscription
more than a share of them: a dead endpoint's attempts, each waiting out the timeout, then slow only
that endpoint's own events, never the other integrators'.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
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

# One subscription's attempts in flight are held to this share of a worker's slots. An endpoint that
# hangs until the timeout then holds at most a quarter of them, and every other integrator's events
# go out through the rest at once instead of queueing behind it.
SUBSCRIPTION_SHARE = 4


def per_subscription_cap(concurrency: int) -> int:
    """How many attempts to one subscription a worker with ``concurrency`` slots has in flight at most."""
    return max(1, concurrency // SUBSCRIPTION_SHARE)


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
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        """``on_outcome`` is told what came of each attempt once it is recorded (the process's metrics)."""
        self.store = DeliveryStore(engine)
        self.on_outcome = on_outcome
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
        # Claims are made only for free slots, so an attempt starts as soon as it is claimed, well
        # inside its lease.
        self.slots = settings.webhook_concurrency
        self.per_subscription = per_subscription_cap(settings.webhook_concurrency)
        self._in_flight: Counter[str] = Counter()  # attempts under way, by subscription
        self._finished = threading.Condition()  # notified whenever an attempt ends
        self._ends = 0  # attempts ended so far: a waiter compares it with what it saw before claiming
        self._poster = Poster()
        self._pool = ThreadPoolExecutor(self.slots, thread_name_prefix=f"webhook-{worker_id}")

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set, refilling each slot as soon as its attempt ends.

        Idle, or with every slot busy, it waits for an attempt to end or the poll interval, whichever
        comes first. A failed claim (the database unreachable, say) is logged and tried again after
        the poll interval. On ``stop`` the attempts in flight are finished and recorded.
        """
        try:
            while not stop.is_set():
                ended = self._ended
                try:
                    started = self._start_due(self.clock())
                except Exception:
                    log.exception(
                        "claiming deliveries failed; trying again in %s s", self.settings.webhook_poll_s
                    )
                    stop.wait(self.settings.webhook_poll_s)
                    continue
                if not started or self._free_slots() == 0:
                    self._wait_for_an_end(since=ended, timeout_s=self.settings.webhook_poll_s)
        finally:
            self.close()

    def deliver_due(self, now: datetime) -> int:
        """One pass: claim what is due at ``now`` for the free slots, post it, and wait for every
        attempt to be recorded; how many were claimed."""
        started = self._start_due(now)
        wait(started)
        return len(started)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._poster.close()

    @property
    def _ended(self) -> int:
        with self._finished:
            return self._ends

    def _free_slots(self) -> int:
        with self._finished:
            return self.slots - self._in_flight.total()

    def _start_due(self, now: datetime) -> list[Future[None]]:
        """Claim due deliveries for the free slots, each subscription within its cap, and start them."""
        with self._finished:
            free = self.slots - self._in_flight.total()
            in_flight = dict(self._in_flight)
        if free <= 0:
            return []
        claimed = self.store.claim(
            now=now,
            worker=self.worker_id,
            limit=free,
            lease=self.lease,
            per_subscription=self.per_subscription,
            in_flight=in_flight,
        )
        with self._finished:
            self._in_flight.update(c.subscription_id for c in claimed)
        return [self._pool.submit(self._in_slot, c) for c in claimed]

    def _wait_for_an_end(self, *, since: int, timeout_s: float) -> None:
        with self._finished:
            self._finished.wait_for(lambda: self._ends != since, timeout=timeout_s)

    def _in_slot(self, claimed: Claimed) -> None:
        """The attempt, then its slot handed back; an error costs this attempt only (its claim runs out
        and the row is attempted again)."""
        try:
            self._attempt(claimed)
        except Exception:
            log.exception("delivery %s: recording the attempt failed", claimed.delivery_id)
        finally:
            with self._finished:
                self._in_flight[claimed.subscription_id] -= 1
                if self._in_flight[claimed.subscription_id] <= 0:
                    del self._in_flight[claimed.subscription_id]
                self._ends += 1
                self._finished.notify_all()

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
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome
