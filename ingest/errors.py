"""What a failure in the ingest loop means, decided once for every step that can fail.

The loop answers a failure in one of three ways, so each error is classified
into exactly one of them here and nowhere else:

- ``TRANSIENT``: the store, the database or the broker cannot answer now.
  The batch is kept and retried with backoff; nothing is skipped.
- ``REFUSED``: a server answered and refused *these items* (InfluxDB 400, a
  PostgreSQL ``DataError`` such as text holding U+0000, a constraint).
  Retrying would refuse them forever and stall their partition, so the items
  are isolated and dead-lettered with the server's reason.
- ``FATAL``: anything else: a bug, or a server that refuses *us* (bad
  credentials, a missing database). Retrying or dead-lettering would only
  hide it, so the worker stops, with the offsets uncommitted, and says why.
"""

from __future__ import annotations

import enum

import sqlalchemy as sa
from confluent_kafka import KafkaException

from ingest.producer import DeliveryFailed
from store.port import StoreError, StoreRefused, StoreUnavailable


class Failure(enum.Enum):
    TRANSIENT = "transient"
    REFUSED = "refused"
    FATAL = "fatal"


def classify(exc: BaseException) -> Failure:
    """The one place that says whether a failure is worth retrying, isolating, or stopping for."""
    if isinstance(exc, StoreRefused | sa.exc.DataError | sa.exc.IntegrityError):
        return Failure.REFUSED
    if isinstance(exc, StoreUnavailable | DeliveryFailed | sa.exc.OperationalError | sa.exc.InterfaceError):
        return Failure.TRANSIENT
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return Failure.TRANSIENT
    if isinstance(exc, KafkaException) and exc.args and exc.args[0].retriable():
        return Failure.TRANSIENT
    if isinstance(exc, StoreError):
        return Failure.FATAL  # the store refuses us, not the data (see store.port)
    if isinstance(exc, ConnectionError | TimeoutError):
        return Failure.TRANSIENT
    return Failure.FATAL


def is_transient(exc: BaseException) -> bool:
    return classify(exc) is Failure.TRANSIENT


def reason(exc: BaseException) -> str:
    """What the server said, for a dead letter's ``reason`` header: without SQLAlchemy's echo of the
    statement and its parameters, which repeat the refused item and may be long."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}".strip()
    return str(exc)
