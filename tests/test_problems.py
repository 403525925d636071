"""Every error is one shape: an RFC 9457 problem document, with the headers its status needs.

Each kind of error the app can give is provoked for real (no key, a weak key,
an unknown id or path, a wrong method, bad parameters, a broken body, an
exception in a route, a database that refuses connections) and answered as
``application/problem+json`` with type, title, status, detail and instance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.problems import INVALID_REQUEST, PROBLEM_JSON
from app.auth.roles import Role
from app.main import create_app
from bench.isolation import isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker
from tests.auth_helpers import bearer, new_key
from tests.factories import gas_reading

SECRET = "s3cr3t-in-the-exception-message"


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
    )


def failing_app(settings: Settings) -> FastAPI:
    """The app with two routes that fail as code can: a bug, and a database that refuses connections."""
    app = create_app(settings)

    def bug() -> None:
        raise RuntimeError(SECRET)

    def database_down() -> None:
        with sa.create_engine("postgresql+psycopg://citywarn@127.0.0.1:1/none").connect():
            pass

    app.add_api_route("/test/bug", bug)
    app.add_api_route("/test/database-down", database_down)
    return app


@pytest.fixture
def raw_client(settings: Settings) -> Iterator[TestClient]:
    """No key, and server errors answered rather than raised into the test."""
    with TestClient(failing_app(settings), raise_server_exceptions=False) as c:
        yield c


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["instance"] == resp.request.url.path
    assert {"type", "title", "detail"} <= set(body) and body["title"] and body["detail"]
    return body


def test_no_key_is_a_401_problem_with_a_bearer_challenge(raw_client: TestClient) -> None:
    body = problem(raw_client.get("/v1/warnings"), 401)
    assert (body["type"], body["title"]) == ("about:blank", "Unauthorized")
    assert raw_client.get("/v1/warnings").headers["www-authenticate"] == "Bearer"


def test_a_role_without_the_permission_is_a_403_problem(raw_client: TestClient) -> None:
    viewer = bearer(new_key(raw_client.app, Role.VIEWER))  # type: ignore[arg-type]
    body = problem(raw_client.post("/v1/warnings/w-1/acknowledge", headers=viewer), 403)
    assert body["title"] == "Forbidden" and "viewer" in body["detail"]


def test_an_unknown_id_and_an_unknown_path_are_404_problems(client: TestClient) -> None:
    assert "w-nothing" in problem(client.get("/v1/warnings/w-nothing"), 404)["detail"]
    problem(client.get("/v1/nothing-here"), 404)


def test_a_wrong_method_is_a_405_problem_allowing_every_method_of_the_path(client: TestClient) -> None:
    # GET and POST /v1/reports are two routes; Starlette's own 405 would name only the first.
    resp = client.put("/v1/reports", json={})
    problem(resp, 405)
    assert resp.headers["allow"] == "GET, POST"


def test_a_bad_parameter_is_a_422_naming_it_and_a_long_value_is_cut(client: TestClient) -> None:
    body = problem(client.get("/v1/warnings", params={"limit": "many", "area": "x" * 5000}), 422)
    assert body["type"] == INVALID_REQUEST
    errors = {e["field"]: e for e in body["errors"]}
    assert set(errors) == {"query.limit", "query.area"}
    assert errors["query.limit"]["value"] == "many"
    assert len(errors["query.area"]["value"]) <= 80 and "x" * 5000 not in str(body)


def test_a_body_that_is_not_json_is_a_400_problem_on_every_route(client: TestClient) -> None:
    for path in ("/v1/warnings/w-1/acknowledge", "/v1/readings"):
        body = problem(client.post(path, content=b"{oops", headers={"content-type": "application/json"}), 400)
        assert "JSON" in body["detail"]


def test_a_body_not_sent_as_json_is_a_415_problem_on_every_route(client: TestClient) -> None:
    for path in ("/v1/warnings/w-1/acknowledge", "/v1/readings", "/v1/keys"):
        for content_type in ("text/plain", "application/x-www-form-urlencoded"):
            resp = client.post(path, content=b'{"note": "x"}', headers={"content-type": content_type})
            assert "application/json" in problem(resp, 415)["detail"], (path, content_type)


def test_a_body_field_error_is_a_422_naming_the_field_in_the_body(client: TestClient) -> None:
    body = problem(client.post("/v1/warnings/w-1/acknowledge", json={"note": ["not", "text"]}), 422)
    assert [e["field"] for e in body["errors"]] == ["body.note"]
    assert body["errors"][0]["value"] is None  # a container is never echoed


def test_a_bug_is_a_500_problem_that_shows_nothing_and_is_logged(
    raw_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="app.api.problems"):
        body = problem(raw_client.get("/test/bug"), 500)
    assert SECRET not in str(body) and "Traceback" not in str(body) and "RuntimeError" not in str(body)
    [record] = [r for r in caplog.records if r.name == "app.api.problems"]
    assert record.exc_info is not None and SECRET in str(record.exc_info[1])


def test_a_database_that_refuses_connections_is_a_503_problem_to_retry(raw_client: TestClient) -> None:
    resp = raw_client.get("/test/database-down")
    body = problem(resp, 503)
    assert "127.0.0.1:1" not in str(body)
    assert int(resp.headers["retry-after"]) > 0


def test_a_batch_with_a_refused_item_is_a_problem_that_counts_the_accepted(client: TestClient) -> None:
    resp = client.post("/v1/readings", json={"readings": [gas_reading(), gas_reading(ts="yesterday")]})
    body = problem(resp, 422)
    assert body["type"] == "tag:citywarn,2026:batch-partly-refused"
    assert body["accepted"] == 1 and body["durable"] is True
    [refused] = body["rejected"]
    assert refused["index"] == 1 and refused["errors"][0]["field"] == "body.readings[1].ts"


# ---- the contract ---------------------------------------------------------------------------------

METHODS_WITH_BODIES = {"post", "put", "patch"}


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_the_openapi_document_declares_every_error_answer_as_a_problem(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    members = set(schemas["Problem"]["properties"])
    assert {"type", "title", "status", "detail", "instance", "errors"} <= members
    operations = [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]
    assert len(operations) >= 15
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        codes = set(op["responses"])
        must = {"422", "500"}
        if "requestBody" in op:
            must |= {"400", "413", "415"}
        if op.get("security"):
            must |= {"401", "403", "429"}
        if "{" in path:
            must.add("404")
        if path != "/healthz":
            must.add("503")
        assert must <= codes, (where, must - codes)
        for code, answer in op["responses"].items():
            if code[0] in "45":
                assert list(answer["content"]) == [PROBLEM_JSON], (where, code)
                schema = answer["content"][PROBLEM_JSON]["schema"]
                assert {"$ref": "#/components/schemas/Problem"} in (schema, *schema.get("allOf", [])), where
        if method in METHODS_WITH_BODIES:
            assert "application/json" in op.get("requestBody", {}).get("content", {}), where
    for post in ("/v1/warnings/{warning_id}/acknowledge", "/v1/warnings/{warning_id}/resolve"):
        assert "409" in doc["paths"][post]["post"]["responses"]
    # Every reference resolves, including those of the request bodies declared by hand.
    for ref in set(refs(doc)):
        assert ref.rsplit("/", 1)[1] in schemas, ref
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas)
