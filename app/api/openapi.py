"""The OpenAPI document as the contract: every answer an operation can give is declared.

FastAPI declares the answers a route names and a 422; the rest of what this
app can answer comes from layers it does not see (the problem handlers, the
input limits, the key check, the rate limiter), so they are added here by
rule, each as an RFC 9457 problem under ``application/problem+json``:

- every operation: 422 (a parameter, or U+0000 anywhere in the URL) and 500;
- an operation with a body: 400 (not JSON), 413 (too large), 415 (not JSON);
- a secured one (a security requirement, from the bearer check): 401, 403, 429;
- one with path parameters: 404;
- one that reaches the state database, store or bus (``deps.services``): 503.

A string parameter without a pattern of its own is declared free of U+0000,
which the input limits refuse anywhere in a URL.

An error a route declares with a model of its own keeps that model as the
problem's extension members (``allOf`` with the problem schema). Request
and response schemas given inline with ``$defs`` (the hand-parsed ingest
batches, the warnings' GeoJSON) have those definitions hoisted into the
components.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.deps import services
from app.api.problems import PROBLEM_JSON, Problem
from app.api.webhook_docs import tidy_webhooks

REF = "#/components/schemas/{model}"
PROBLEM_REF = {"$ref": REF.format(model="Problem")}
FASTAPI_422 = {"HTTPValidationError", "ValidationError"}
NO_NUL = r"^[^\x00]*$"

DESCRIPTIONS = {
    400: "The body is not JSON (UTF-8)",
    401: "No API key, or one that is unknown, expired or revoked (WWW-Authenticate: Bearer)",
    403: "The key's role does not allow this",
    404: "Nothing at this path",
    413: "The body is larger than the configured limit",
    415: "The body is not application/json",
    422: "Refused input: each field named in errors",
    429: "Too many requests for this key; Retry-After says when to try again",
    500: "An internal error; nothing of it is shown, it is logged",
    503: "A service this request needs (database, store or message bus) is unavailable; retry later",
}


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` by one that declares every answer (built once, then cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            tidy_webhooks(doc)
            declare_answers(doc, needs_services=_operations_using(app, services))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def declare_answers(doc: dict[str, Any], *, needs_services: set[tuple[str, str]]) -> None:
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    _add_schemas(schemas, Problem.model_json_schema(ref_template=REF))
    for path, method, op in _operations(doc):
        body = op.get("requestBody", {}).get("content", {})
        answers = [a.get("content", {}) for a in op.get("responses", {}).values()]
        for media in [*body.values(), *(m for content in answers for m in content.values())]:
            if "$defs" in media.get("schema", {}):
                _add_schemas(schemas, {"$defs": media["schema"].pop("$defs")})
        for parameter in op.get("parameters", []):
            _no_nul(parameter.get("schema", {}))
        codes = {422, 500}
        if body:
            codes |= {400, 413, 415}
        if op.get("security"):
            codes |= {401, 403, 429}
        if "{" in path:
            codes.add(404)
        if (path, method) in needs_services:
            codes.add(503)
        responses: dict[str, Any] = op.setdefault("responses", {})
        for status in codes:
            responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
        for code, answer in responses.items():
            if code[:1] in ("4", "5"):
                answer["content"] = {PROBLEM_JSON: {"schema": _problem_schema(answer)}}
                if code == "422" and answer.get("description") == "Validation Error":
                    answer["description"] = DESCRIPTIONS[422]
        op["responses"] = dict(sorted(responses.items()))
    if not any(f'/{name}"' in json.dumps(doc["paths"]) for name in FASTAPI_422):
        for name in FASTAPI_422:
            schemas.pop(name, None)


def _no_nul(schema: dict[str, Any]) -> None:
    """Declare on a string parameter what the input limits refuse in any URL: U+0000."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string" and "pattern" not in option and "enum" not in option:
            option["pattern"] = NO_NUL


def _problem_schema(answer: dict[str, Any]) -> dict[str, Any]:
    """The problem schema, with the route's own model for the error (if any) as its extension members."""
    declared = answer.get("content", {}).get("application/json", {}).get("schema")
    if not declared or declared == PROBLEM_REF or declared.get("$ref", "").rsplit("/", 1)[-1] in FASTAPI_422:
        return PROBLEM_REF
    return {"allOf": [PROBLEM_REF, declared]}


def _add_schemas(schemas: dict[str, Any], schema: dict[str, Any]) -> None:
    """Add a model's schema and its ``$defs`` under their names; a name taken by another schema is a bug."""
    defs = schema.pop("$defs", {})
    if "title" in schema:
        defs[schema["title"]] = schema
    for name, definition in defs.items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas named {name} in the OpenAPI document")


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
                yield path, method, op


def _operations_using(app: FastAPI, dependency: Callable[..., Any]) -> set[tuple[str, str]]:
    """(path, method) of every operation whose dependencies include ``dependency``, however deep."""
    found = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and _depends_on(route.dependant, dependency):
            found |= {(str(route.path_format), m.lower()) for m in route.methods or ()}
    return found


def _depends_on(dependant: Dependant, dependency: Callable[..., Any]) -> bool:
    return any(d.call is dependency or _depends_on(d, dependency) for d in dependant.dependencies)
