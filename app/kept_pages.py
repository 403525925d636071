"""``GET /v1/warnings`` answered from a kept page without FastAPI, when nothing it checks is in doubt.

Measured (``python -m bench.api``'s profile, and the app called in-process):
a kept page cost about 0.4 ms of Python a request, two thirds of it FastAPI
solving the route's dependencies and validating its eleven query parameters
again, for a query string it had validated the time before. With ingest in
the same process, that was the API's ceiling. This layer answers such a
request itself, and only when every answer FastAPI could give is known:

- the query string, byte for byte, is one the route validated and answered
  (``PageCache.alias``), so its filters and its 422s are the route's own;
- no body, so ``InputLimits`` and ``BodySizeLimit`` have nothing to refuse;
- the key is one ``app.auth.deps.require`` admitted within the cache's time
  to live and has not expired (``AuthCache.lookup``), and its role may read
  warnings;
- the page is made and the warnings table unchanged since
  (``PageCache.kept``);
- the rate limiter, if any, counts in this process and admits the request
  (asked last, so a request passed on for any other reason is counted once,
  by ``require``; one it refuses is passed on and counted again there, past
  its limit already).

Anything else passes to the app unchanged. It sits inside ``HttpMetrics``
(counted and timed under the route's template) and ``AuditLog`` (which logs
only changes), and leaves the principal on the request's state as
``require`` would.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException
from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.page_cache import page_cache
from app.auth.deps import DEFAULT_AUTH_CACHE_TTL_S
from app.auth.keys import AuthCache
from app.auth.roles import Permission
from app.limits import has_body

PATH = "/v1/warnings"


class KeptPages:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._kept(scope) if _candidate(scope) else None
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _kept(self, scope: Scope) -> bytes | None:
        state = getattr(scope.get("app"), "state", None)
        svc = getattr(state, "services", None)
        if svc is None:
            return None
        settings = getattr(svc, "settings", None)
        token = _bearer(scope)
        if token is None:
            return None
        ttl = getattr(settings, "auth_cache_ttl_s", DEFAULT_AUTH_CACHE_TTL_S)
        principal = AuthCache.for_engine(svc.engine, ttl).lookup(token, now=datetime.now(UTC))
        if principal is None or not principal.may(Permission.READ_WARNINGS):
            return None
        limiter = getattr(state, "rate_limiter", None)
        if limiter is not None and not getattr(settings, "rate_limit_storage_uri", "memory://").startswith(
            "memory://"
        ):
            return None
        cache = page_cache(svc.engine)
        body = await cache.kept(scope.get("query_string", b""))
        if body is None:
            return None
        if limiter is not None:
            try:
                limiter.hit("api", principal.key_id)
            except HTTPException:
                return None  # the app refuses it, with the problem document and Retry-After it words
        scope["route"] = cache.route
        scope.setdefault("state", {})["principal"] = principal
        return body


def _candidate(scope: Scope) -> bool:
    """A GET of the list with no body: the only request this layer may answer."""
    return (
        scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == PATH and not has_body(scope)
    )


def _bearer(scope: Scope) -> str | None:
    """The token as ``HTTPBearer`` reads it: the first Authorization header, scheme Bearer in any case."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, token = get_authorization_scheme_param(value.decode("latin-1"))
            return token if scheme.lower() == "bearer" and token else None
    return None
