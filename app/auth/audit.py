"""The audit log: one JSON line per state-changing request, on the ``citywarn.audit`` logger.

An ASGI middleware rather than code in each route, so a request refused
before its route ran (no key, a wrong role, a bad body, a rate limit) is
logged as surely as one that changed something. It reads what the auth
dependency left on ``request.state`` (the principal, or why the key was
refused) and what the router matched (the route template and its path
parameters) once the response has started.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.keys import AuthFailure, parse_token
from app.auth.roles import Principal

log = logging.getLogger("citywarn.audit")

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SHOWN = 200  # at most this many characters of a path or parameter go into a line


def outcome(status: int) -> str:
    if status >= 500:
        return "failed"
    return "refused" if status >= 400 else "ok"


class AuditLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGING:
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            log.info(json.dumps(audit_record(scope, status), ensure_ascii=False))


def audit_record(scope: Scope, status: int) -> dict[str, Any]:
    """What one request did: who (key id, label, role), what (method and route), to what, and how it ended."""
    state: dict[str, Any] = scope.get("state", {})
    principal: Principal | None = state.get("principal")
    failure: AuthFailure | None = state.get("auth_failure")
    route = scope.get("route")
    template = getattr(route, "path", None) or str(scope.get("path", ""))[:_SHOWN]
    return {
        "time": datetime.now(UTC).isoformat(),
        "key_id": principal.key_id if principal else _presented_key_id(scope),
        "label": principal.label if principal else None,
        "role": principal.role.value if principal else None,
        "action": f"{scope['method']} {template}",
        "target": {k: str(v)[:_SHOWN] for k, v in scope.get("path_params", {}).items()},
        "status": status,
        "outcome": outcome(status),
        **({"auth": failure.value} if failure else {}),
    }


def _presented_key_id(scope: Scope) -> str | None:
    """The id part of a refused key, if it was well formed: never the secret."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            parsed = parse_token(token.strip()) if scheme.lower() == "bearer" else None
            return parsed[0] if parsed else None
    return None
