"""Inputs that used to be a 500 are a 4xx naming the field, on SQLite and PostgreSQL alike.

The nine from issue 9 (a 100,000-deep nesting, a 5,000-digit integer,
``{"actor": NaN}``, U+0000 in text on PostgreSQL, dates in year 1 or 9999)
and their relatives in queries and paths; the bounds are checked on the raw
bytes, and the fast check must never miss what the careful one finds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.json_limits import JsonLimits
from app.main import create_app
from bench.isolation import isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from ingest.kafka import producer_config
from ingest.producer import ConfirmedProducer
from store.reports import ReportRepository
from tests.auth_helpers import admin_client
from tests.factories import gas_reading
from tests.pipeline_harness import read_topic, running_pipeline, wait_until

ACK = "/v1/warnings/w-1/acknowledge"
YEAR_1 = "0001-01-01T00:00:00+08:00"
YEAR_9999 = "9999-12-31T23:59:59-08:00"


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    database_url = (
        f"sqlite:///{tmp_path}/state.sqlite3"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    return isolated_settings(
        bootstrap=broker.bootstrap, store_url=f"file://{tmp_path}/store.sqlite3", database_url=database_url
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    # Server errors answered, not raised into the test: a 500 must fail the status assertion.
    with admin_client(create_app(settings)) as c:
        c._transport.raise_server_exceptions = False  # type: ignore[attr-defined]
        yield c


def refused(resp: httpx.Response, status: int = 422) -> dict[str, str]:
    """The fields a problem document names, with their reasons."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    return {e["field"]: e["reason"] for e in resp.json()["errors"]}


def post_json(client: TestClient, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


# ---- the nine inputs, and their kin ---------------------------------------------------------------


def test_a_100000_deep_nesting_is_a_422_naming_where_it_got_too_deep(client: TestClient) -> None:
    body = b'{"note": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    [(field, reason)] = refused(post_json(client, ACK, body)).items()
    assert field == "body.note" + "[0]" * 31 and "deeper than 32" in reason


def test_a_5000_digit_integer_is_a_422_naming_the_field(client: TestClient) -> None:
    errors = refused(post_json(client, ACK, b'{"note": ' + b"9" * 5000 + b"}"))
    assert "number literal of 5000 characters" in errors["body.note"]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_a_422_naming_the_field(client: TestClient, literal: bytes) -> None:
    errors = refused(post_json(client, ACK, b'{"actor": %s}' % literal))
    assert "not a JSON number" in errors["body.actor"]


def test_u0000_in_any_string_or_key_of_a_body_is_a_422(client: TestClient) -> None:
    assert "U+0000" in refused(post_json(client, ACK, b'{"note": "leak \\u0000 here"}'))["body.note"]
    assert "key holds U+0000" in refused(post_json(client, ACK, b'{"no\\u0000te": "x"}'))["body"]
    # An escaped backslash before "u0000" is text, not U+0000.
    assert post_json(client, ACK, b'{"note": "C:\\\\u0000"}').status_code == 404


def test_u0000_in_a_report_refuses_that_report_only(client: TestClient, settings: Settings) -> None:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    report = {"source": "app", "category": "waterlogging", "ts": now, "area": "g-riverside-05"}
    batch = [{**report, "report_id": "ok", "text": "积水"}, {**report, "report_id": "nul", "text": "\x00"}]
    resp = client.post("/v1/reports", json={"reports": batch})
    assert resp.status_code == 422 and resp.json()["accepted"] == 1
    [item] = resp.json()["rejected"]
    assert [e["field"] for e in item["errors"]] == ["body.reports[1].text"]


def test_u0000_in_a_query_or_path_is_a_422_naming_it(client: TestClient) -> None:
    assert "query.area" in refused(client.get("/v1/reports", params={"area": "g\x00"}))
    assert "query.category" in refused(client.get("/v1/reports?category=%00"))
    assert "path" in refused(client.get("/v1/warnings/w%00"))


def test_an_id_in_a_path_is_bounded_like_an_id_in_a_body(client: TestClient) -> None:
    assert "path.warning_id" in refused(client.get("/v1/warnings/" + "w" * 129))
    assert "path.area_id" in refused(client.get(f"/v1/areas/{'a' * 129}/risk"))
    assert client.get("/v1/warnings/" + "w" * 128).status_code == 404


@pytest.mark.parametrize("ts", [YEAR_1, YEAR_9999])
def test_a_timestamp_in_year_1_or_9999_in_a_body_is_a_422_naming_the_field(
    client: TestClient, ts: str
) -> None:
    resp = client.post("/v1/readings", json={"readings": [gas_reading(), gas_reading(ts=ts)]})
    assert resp.status_code == 422 and resp.json()["accepted"] == 1
    [item] = resp.json()["rejected"]
    assert [e["field"] for e in item["errors"]] == ["body.readings[1].ts"]
    assert "1677" in item["errors"][0]["reason"]


@pytest.mark.parametrize(("name", "ts"), [("since", YEAR_1), ("until", YEAR_9999)])
def test_a_time_in_year_1_or_9999_in_a_query_is_a_422_naming_it(
    client: TestClient, name: str, ts: str
) -> None:
    for path in ("/v1/warnings", "/v1/reports"):
        assert f"query.{name}" in refused(client.get(path, params={name: ts}))


@pytest.mark.parametrize("text", ["0.5", "1764403200", "2026-11-29", "2026-02-31T00:00:00Z", "tomorrow"])
def test_a_time_in_a_query_must_be_a_date_and_time(client: TestClient, text: str) -> None:
    assert "query.until" in refused(client.get("/v1/warnings", params={"until": text}))


def test_a_reading_from_year_1_on_kafka_is_dead_lettered_and_the_consumer_goes_on(
    settings: Settings,
) -> None:
    bad = json.dumps(gas_reading(ts=YEAR_1)).encode()
    good = json.dumps(gas_reading()).encode()
    producer = ConfirmedProducer(producer_config(settings))
    try:
        with running_pipeline(settings) as (svc, worker):
            producer.send_all(settings.topic_readings, [(b"g", bad, None), (b"g", good, None)])
            wait_until(lambda: worker.stats.consumed >= 2, timeout_s=30, what="both messages")
            assert svc.store.count() == 1
    finally:
        producer.close()
    [dead] = read_topic(settings.kafka_bootstrap, settings.topic_deadletter, 1)
    assert dict(dead.headers())["reason"].decode().startswith("ts:")


def test_a_report_filter_holding_u0000_matches_nothing_on_either_database(settings: Settings) -> None:
    from alerts import db

    engine = db.connect(settings.database_url)
    try:
        assert ReportRepository(engine).list(area="g\x00", category="\x00", source="a\x00") == ([], 0)
    finally:
        engine.dispose()


# ---- the raw-byte check itself --------------------------------------------------------------------

LIMITS = JsonLimits(max_depth=6, max_number_chars=30)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab[]{}"\\:, \x00\u00e9'), max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet=st.sampled_from('k[]"\\\x00'), max_size=3), children, max_size=3)
    ),
    max_leaves=20,
)


def expected(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` breaks a bound, judged on the parsed value (the slow, obvious way)."""
    if isinstance(value, dict | list):
        if depth + 1 > LIMITS.max_depth:
            return True
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return any((isinstance(k, str) and "\x00" in k) or expected(v, depth + 1) for k, v in items)
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return len(json.dumps(value)) > LIMITS.max_number_chars
    return False


@hsettings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_the_fast_check_finds_exactly_what_the_parsed_value_breaks(value: Any, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert (LIMITS.check(raw) is not None) == expected(value), raw


def test_brackets_and_escaped_quotes_inside_strings_do_not_count_as_nesting() -> None:
    assert LIMITS.check(json.dumps({"a": "[[[[[[[[[[", "b": '\\"[[[[[[[[[['}).encode()) is None
    assert LIMITS.check(b"[[[[[[1]]]]]]") is None
    violation = LIMITS.check(b'{"a": [[[[[[1]]]]]]}')
    assert violation is not None and violation.path == "a" + "[0]" * 5  # the seventh container


def test_a_number_literal_of_exactly_the_bound_passes_and_one_more_is_refused() -> None:
    for bound in (24, 25, 26, 100):
        limits = JsonLimits(max_depth=8, max_number_chars=bound)
        for literal in ("9" * bound, "-1." + "0" * (bound - 3), "1." + "2" * (bound - 6) + "e+10"):
            assert len(literal) == bound
            assert limits.check(b"[%s]" % literal.encode()) is None
            assert limits.check(b"[%s1]" % literal.encode()) is not None, literal


def test_a_body_whose_values_its_reader_judges_is_checked_only_for_depth_and_numbers() -> None:
    assert LIMITS.check(b'{"v": NaN, "t": "\\u0000"}', values=False) is None
    assert LIMITS.check(b'{"v": ' + b"1" * 31 + b"}", values=False) is not None


def test_invalid_json_is_left_to_the_parser(client: TestClient) -> None:
    assert LIMITS.check(b'{"a": [}') is None
    assert post_json(client, ACK, b'{"note": [}').status_code == 400
