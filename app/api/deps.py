"""Dependencies the routers take through ``Depends``, so tests can override them.

No ``from __future__ import annotations`` here: the query-parameter factories
put their names in annotations, which FastAPI must evaluate where they are
defined, inside the factory.

Every dependency here but ``now`` is ``async`` although none awaits: FastAPI runs a plain
``def`` dependency on a pool thread, and each such hop waits for the GIL
behind busy ingest threads (up to the 5 ms switch interval each way); these
only read the request or parse a string, which the event loop does at once.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError

from app.services import Services
from config.timeutil import parse_instant

NAIVE_IS_UTC = "A bound without a UTC offset is taken as UTC."
# ISO 8601 date and time, the offset optional (naive is UTC), so declared as a pattern: OpenAPI's
# date-time format requires an offset, and a datetime field would also take "0.5" as a Unix time.
# Years 1678..2261, the whole years the stores hold (EARLIEST..LATEST), so the document says which
# instants are valid; and the days each month can have (29 February is checked when parsed).
_YEAR = r"(167[89]|16[89]\d|1[7-9]\d{2}|2[01]\d{2}|22[0-5]\d|226[01])"
_DATE = r"((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-9]))"
INSTANT_PATTERN = (
    rf"^{_YEAR}-{_DATE}[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{{1,9}})?)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?$"
)
# What a 422 says of a value that does not match it: the pattern itself is 300 characters of regex.
INSTANT_EXPECTED = (
    "expected an ISO 8601 date and time such as 2026-07-01T14:30:00Z (seconds, fraction and "
    "offset optional; no offset is UTC), in the years 1678 to 2261"
)

# Ids in paths are bounded like ids in bodies (ingest.schemas.ID_PATTERN's 128 characters).
WarningId = Annotated[str, Path(max_length=128, description="A warning's id")]
AreaId = Annotated[str, Path(max_length=128, description="A district's or community grid's id")]


async def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def now() -> datetime:
    """Plain ``def``: the ingest routers also call it directly (``ingest.http_batches``)."""
    return datetime.now(UTC)


async def request_time() -> datetime:
    """``now`` as a route's dependency: FastAPI runs a plain ``def`` dependency on a pool thread, a
    thread hop per request (and a wait for the GIL under load) to read a clock."""
    return now()


Now = Annotated[datetime, Depends(request_time)]


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """A half-open range [lower, upper) in UTC; either end may be open."""

    lower: datetime | None
    upper: datetime | None


def time_bounds(
    lower: str = "since",
    upper: str = "until",
    *,
    lower_doc: str = "At or after",
    upper_doc: str = "Before (at or before the lower bound: an empty range)",
) -> Callable[..., Awaitable[TimeBounds]]:
    """A dependency reading two query parameters as one checked UTC range, for any router.

    Each bound must lie where the stores can hold it (a signed 64-bit count of
    nanoseconds: 1677..2262), else a 422 names the parameter. A lower bound at or
    after the upper is an empty range, which matches nothing: a well-formed
    request is answered, not refused, as the OpenAPI document promises.
    Usage: ``bounds: Annotated[TimeBounds, Depends(time_bounds())]``.
    """

    async def dependency(
        lo: Annotated[str | None, _instant(lower, lower_doc)] = None,
        hi: Annotated[str | None, _instant(upper, upper_doc)] = None,
    ) -> TimeBounds:
        return TimeBounds(_checked(lower, lo), _checked(upper, hi))

    return dependency


def time_bound(name: str, *, doc: str) -> Callable[..., Awaitable[datetime | None]]:
    """One optional instant in a query parameter, checked and normalised like ``time_bounds``."""

    async def dependency(value: Annotated[str | None, _instant(name, doc)] = None) -> datetime | None:
        return _checked(name, value)

    return dependency


def required_instant(name: str, *, doc: str) -> Callable[..., Awaitable[datetime]]:
    """One instant in a query parameter that must be given, checked and normalised like ``time_bounds``."""

    async def dependency(value: Annotated[str, _instant(name, doc)]) -> datetime:
        checked = _checked(name, value)
        assert checked is not None  # the parameter is required
        return checked

    return dependency


def _instant(name: str, doc: str) -> Any:
    return Query(
        alias=name,
        max_length=40,
        pattern=INSTANT_PATTERN,
        description=f"{doc}: a date and time, e.g. 2026-11-29T16:00:00+08:00. {NAIVE_IS_UTC}",
    )


def _checked(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise _refused(name, str(exc), text) from None


def _refused(name: str, reason: str, value: object) -> RequestValidationError:
    """A 422 for one query parameter, shaped like FastAPI's own so one handler words every 422."""
    shown = value.isoformat() if isinstance(value, datetime) else value
    return RequestValidationError(
        [{"loc": ("query", name), "msg": reason, "type": "value_error", "input": shown}]
    )
