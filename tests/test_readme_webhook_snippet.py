"""The README's signature checks for integrators work: run as printed, against a signed delivery."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

README = Path(__file__).resolve().parents[1] / "README.md"
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = json.dumps({"type": "warning.opened", "timestamp": "2026-12-01T10:00:00Z", "data": {}}).encode()

Verify = Callable[[bytes, dict[str, str], str], Any]


def snippet(name: str) -> Verify:
    """The ``citywarn_event`` function of the README's code block after ``<!-- snippet: name -->``."""
    found = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert found, f"README has no snippet {name}"
    namespace: dict[str, Any] = {}
    exec(compile(found.group(1), f"README:{name}", "exec"), namespace)
    return namespace["citywarn_event"]  # type: ignore[no-any-return]


def signed(body: bytes, *secrets: str, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signatures = " ".join(Webhook(s).sign("msg_1", at, body.decode()) for s in secrets)
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


REFUSAL = {"verify-with-library": WebhookVerificationError, "verify-by-hand": ValueError}


@pytest.fixture(params=list(REFUSAL))
def named(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def verify(named: str) -> Verify:
    return snippet(named)


def test_a_signed_body_is_accepted_and_parsed(verify: Verify) -> None:
    assert verify(BODY, signed(BODY, SECRET), SECRET)["type"] == "warning.opened"


def test_either_secret_verifies_during_a_rotation(verify: Verify) -> None:
    headers = signed(BODY, SECRET, OLD_SECRET)
    assert verify(BODY, headers, SECRET)["type"] == "warning.opened"
    assert verify(BODY, headers, OLD_SECRET)["type"] == "warning.opened"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h: (BODY.replace(b"opened", b"closed"), h, SECRET), id="body changed"),
        pytest.param(lambda h: (BODY, h, OLD_SECRET), id="another secret"),
        pytest.param(lambda h: (BODY, {**h, "webhook-id": "msg_2"}, SECRET), id="id changed"),
        pytest.param(
            lambda _h: (BODY, signed(BODY, SECRET, at=datetime.now(UTC) - timedelta(minutes=10)), SECRET),
            id="ten minutes old",
        ),
    ],
)
def test_anything_else_is_refused(
    named: str, verify: Verify, tamper: Callable[[dict[str, str]], tuple[Any, ...]]
) -> None:
    body, headers, secret = tamper(signed(BODY, SECRET))
    with pytest.raises(REFUSAL[named]):
        verify(body, headers, secret)
