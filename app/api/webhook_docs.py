"""The OpenAPI document's ``webhooks`` section: the request an integrator's endpoint receives.

Nothing here serves a request; the operation documents what citywarn's delivery worker
(``alerts.delivery``) POSTs to a subscription's URL, with the payload models of
``alerts.webhook_payloads``, so integrators can generate their receiver's types from
``/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Header

from alerts.webhook_payloads import WebhookPayload

EVENT = "warning-event"

router = APIRouter()

_DESCRIPTION = """\
citywarn POSTs one JSON event per request to the subscription's URL, signed per the
[Standard Webhooks](https://www.standardwebhooks.com/) specification:

- `webhook-id`: the message id (`msg_...`): the same on every attempt and on a replay, so drop one
  you have already processed;
- `webhook-timestamp`: when this attempt was signed, in seconds since the epoch; refuse one far
  from your clock (a replayed capture);
- `webhook-signature`: `v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{body}`
  under the subscription's secret (the bytes after `whsec_`, base64-decoded); during a secret
  rotation's grace there are two, space-separated, one per secret: accept either.

Verify against the raw body bytes, before parsing them. `type` says which of the bodies it is;
`ping` is a test sent through `POST /v1/subscriptions/{id}/test`.

Answer any 2xx within the configured timeout to acknowledge. Anything else (or no answer) is retried
over the retry schedule, with the same `webhook-id` and body; redirects are not followed; 410 Gone
disables the subscription at once. A warning's events reach a subscription one at a time, in the
order they happened (`data.change.sequence` grows with each).
"""


@router.post(
    EVENT,
    operation_id="warning_event",
    summary="A warning event (or a test ping) posted to a subscription's URL",
    description=_DESCRIPTION,
    status_code=204,
    responses={
        204: {"description": "Received: any 2xx acknowledges the delivery"},
        410: {"description": "Gone: citywarn disables the subscription at once and sends it nothing more"},
    },
)
def warning_event(
    body: Annotated[WebhookPayload, Body()],
    webhook_id: Annotated[str, Header(alias="webhook-id", description="The message id, msg_...")],
    webhook_timestamp: Annotated[
        int, Header(alias="webhook-timestamp", description="Seconds since the epoch, when signed")
    ],
    webhook_signature: Annotated[
        str, Header(alias="webhook-signature", description="v1,<base64 HMAC-SHA256>, space-separated if two")
    ],
) -> None:
    """Documentation only: citywarn sends this request, it does not serve it."""


def install_webhook_docs(app: FastAPI) -> None:
    app.webhooks.include_router(router)


def tidy_webhooks(doc: dict[str, Any]) -> None:
    """Drop the 422 FastAPI declares for every operation with parameters: a receiver's answers are its own,
    and only 2xx and 410 mean anything to citywarn."""
    for item in doc.get("webhooks", {}).values():
        for op in item.values():
            op.get("responses", {}).pop("422", None)
