"""Batch ingest over HTTP, shared by readings and reports: parse, check each item, produce the good ones.

Every item is judged on its own, so one bad item costs only itself: the
answer counts the accepted items and names each refused one by index and
field. Nothing here knows about HTTP status codes; ``ingest.http`` maps the
outcome and the two exceptions below onto them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from config.settings import Settings
from ingest.keys import area_key
from ingest.producer import ConfirmedProducer, DeliveryFailed
from ingest.report_validation import ReportValidator
from ingest.schemas import BatchAnswer, ItemRefused, Reading, Rejection, Report
from ingest.validation import ReadingValidator, rejections_from
from store.schemas import Point, ReportRecord

Model = TypeVar("Model", bound=BaseModel)
Checked = TypeVar("Checked")

# Each batch kind's field in the body, and the model of one item in it.
ITEM_MODELS: dict[str, type[BaseModel]] = {"readings": Reading, "reports": Report}

QUEUED_DURABLE = "queued on a replicated broker: will be stored"
QUEUED_IN_MEMORY = (
    "queued on the embedded broker (memory only): not yet stored; "
    "a crash before the consumer stores it loses it"
)


class BodyUnreadable(Exception):
    """The body is not JSON (or not UTF-8): nothing was queued."""


class BodyRefused(Exception):
    """The body is JSON but unusable as a whole (no list, too many items): nothing was queued."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"{rejection.field}: {rejection.reason}")
        self.rejection = rejection


class BusUnavailable(Exception):
    """The broker did not acknowledge the accepted items, so none of them may count as queued."""


@dataclass(frozen=True, slots=True)
class BatchIngest(Generic[Model, Checked]):
    """One kind of batch (``{"readings": [...]}`` or ``{"reports": [...]}``) and where it goes."""

    field: str
    model: type[Model]
    check: Callable[[Model, datetime], Checked | list[Rejection]]
    # The Kafka key (ingest.keys): it decides the partition, so what stays in order and on one worker.
    key_of: Callable[[Model, Checked], bytes]
    topic: str
    producer: ConfirmedProducer
    max_items: int
    broker_durable: bool

    def accept(self, raw: bytes, now: datetime) -> BatchAnswer:
        """Queue every valid item; returns only once the broker acknowledged them all."""
        accepted: list[tuple[bytes | None, bytes, None]] = []
        rejected: list[ItemRefused] = []
        for i, item in enumerate(self._items(raw)):
            try:
                parsed = self.model.model_validate(item)
            except ValidationError as exc:
                problems = rejections_from(exc, prefix=f"{self.field}[{i}].")
            else:
                checked = self.check(parsed, now)
                if not isinstance(checked, list):
                    key = self.key_of(parsed, checked)
                    accepted.append((key, parsed.model_dump_json().encode(), None))
                    continue
                problems = [r.model_copy(update={"field": f"{self.field}[{i}].{r.field}"}) for r in checked]
            rejected.append(ItemRefused(index=i, errors=problems))
        try:
            self.producer.send_all(self.topic, accepted)
        except DeliveryFailed as exc:
            raise BusUnavailable(f"message bus unavailable: {exc}") from exc
        queued = QUEUED_DURABLE if self.broker_durable else QUEUED_IN_MEMORY
        return BatchAnswer(
            accepted=len(accepted),
            rejected=rejected,
            status="queued" if accepted else "refused",
            durable=self.broker_durable,
            detail=queued if accepted else "nothing was accepted",
        )

    def _items(self, raw: bytes) -> list[Any]:
        try:
            doc = json.loads(raw.decode("utf-8"))
        except RecursionError as exc:
            raise BodyRefused(Rejection(field="body", reason="nested too deeply")) from exc
        except UnicodeDecodeError as exc:
            raise BodyUnreadable(
                f"the body is not UTF-8 (RFC 8259): {exc.reason} at byte {exc.start}"
            ) from exc
        except json.JSONDecodeError as exc:
            raise BodyUnreadable(f"the body is not valid JSON: {exc}") from exc
        except ValueError as exc:  # an integer past Python's 4,300-digit limit
            raise BodyRefused(Rejection(field="body", reason=f"a number too long to read: {exc}")) from exc
        if not isinstance(doc, dict):
            # A bare list of readings is the usual first try of a new gateway: say what the body must be.
            reason = f'expected an object {{"{self.field}": [...]}}, got {_json_type(doc)}'
            raise BodyRefused(Rejection(field="body", reason=reason))
        if self.field not in doc:
            raise BodyRefused(Rejection(field=self.field, reason="missing: expected a non-empty list"))
        items = doc[self.field]
        if not isinstance(items, list) or not items:
            got = "an empty list" if items == [] else _json_type(items)
            raise BodyRefused(Rejection(field=self.field, reason=f"expected a non-empty list, got {got}"))
        if len(items) > self.max_items:
            reason = f"at most {self.max_items} items per request"
            raise BodyRefused(Rejection(field=self.field, reason=reason, value=f"{len(items)} items"))
        return items


def readings_ingest(
    *, validator: ReadingValidator, producer: ConfirmedProducer, settings: Settings
) -> BatchIngest[Reading, Point]:
    return BatchIngest(
        field="readings",
        model=Reading,
        check=validator.check,
        # The area validation resolved from the catalog, whatever the reading claimed or left out.
        key_of=lambda _, point: area_key(point.area),
        topic=settings.topic_readings,
        producer=producer,
        max_items=settings.max_batch_items,
        broker_durable=settings.broker_durable,
    )


def reports_ingest(
    *, validator: ReportValidator, producer: ConfirmedProducer, settings: Settings
) -> BatchIngest[Report, ReportRecord]:
    return BatchIngest(
        field="reports",
        model=Report,
        check=validator.check,
        # By area, so one area's reports stay in order on one partition.
        key_of=lambda _, record: area_key(record.area),
        topic=settings.topic_reports,
        producer=producer,
        max_items=settings.max_batch_items,
        broker_durable=settings.broker_durable,
    )


def _json_type(value: Any) -> str:
    """What a JSON value is, as an error names it."""
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
