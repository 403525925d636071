"""The webhook payloads published in the OpenAPI document (3.1 ``webhooks``): what integrators code to."""

from __future__ import annotations

from typing import Any

from alerts.subscriptions import EVENT_TYPES
from app.main import create_app
from config.settings import Settings


def webhook_operation() -> tuple[dict[str, Any], dict[str, Any]]:
    doc = create_app(Settings()).openapi()  # the document only: nothing is started
    return doc["webhooks"]["warning-event"]["post"], doc["components"]["schemas"]


def test_the_document_publishes_the_signed_post_an_endpoint_receives() -> None:
    op, schemas = webhook_operation()
    headers = {p["name"]: p for p in op["parameters"] if p["in"] == "header"}
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert all(h["required"] for h in headers.values())
    body = op["requestBody"]["content"]["application/json"]["schema"]
    refs = [o["$ref"].rsplit("/", 1)[-1] for o in body["oneOf"]]
    assert refs == ["WarningEventPayload", "RecommendationPayload", "PingPayload"]
    assert all(r in schemas for r in refs)
    # Every type a subscription can ask for has its body, and so does the test ping.
    assert set(body["discriminator"]["mapping"]) == {*EVENT_TYPES, "ping"}
    assert set(op["responses"]) == {"204", "410"}, "a receiver's own refusals are not citywarn's to declare"
    assert "Standard Webhooks" in op["description"]


def test_the_warning_in_a_payload_shows_its_state_but_not_how_it_is_muted_nor_the_long_explanation() -> None:
    _, schemas = webhook_operation()
    warning = schemas["WarningState"]["properties"]
    assert {"id", "hazard", "area", "level", "status", "recommendations", "exercise", "parent_id"} <= set(
        warning
    )
    assert not {"muted_by", "explanation", "assignee", "open_key"} & set(warning)
    change = schemas["Change"]["properties"]
    assert {
        "sequence",
        "action",
        "actor",
        "actor_role",
        "from_status",
        "to_status",
        "at",
        "event_time",
    } <= set(change)
