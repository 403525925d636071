"""The dependency every secured route declares: ``Depends(require(Permission.X))``.

It reads ``Authorization: Bearer <key>`` through FastAPI's ``HTTPBearer``, so
the OpenAPI document names the security scheme on each route that uses it.
No key, or one refused, is a 401 with ``WWW-Authenticate: Bearer`` (plus
``error="invalid_token"`` when a key was presented, RFC 6750 section 3); a
valid key without the permission is a 403. The caller is left on
``request.state.principal`` for the audit log, and counted by the rate
limiter when one is installed on ``app.state.rate_limiter``: per key on
success (ingest apart from everything else), per client address on failure.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import now, services
from app.auth.keys import AuthFailure, KeyStore
from app.auth.roles import Permission, Principal
from app.services import Services

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key from `citywarn keys create` or `POST /v1/keys`, sent as "
    "`Authorization: Bearer cwk_<id>_<secret>`.",
)

REFUSED = {
    AuthFailure.MISSING: "an API key is required: send Authorization: Bearer <key>",
    AuthFailure.MALFORMED: "the API key is malformed",
    AuthFailure.UNKNOWN: "the API key is not valid",
    AuthFailure.EXPIRED: "the API key has expired",
    AuthFailure.REVOKED: "the API key has been revoked",
}


class RateLimiter(Protocol):
    def hit(self, bucket: str, identity: str) -> None:
        """Count one request; raise HTTPException(429) with Retry-After when over the limit."""


def require(permission: Permission) -> Callable[..., Principal]:
    """A dependency admitting only keys whose role grants ``permission``."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        svc: Annotated[Services, Depends(services)],
        at: Annotated[datetime, Depends(now)],
    ) -> Principal:
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        token = credentials.credentials if credentials is not None else None
        found = KeyStore(svc.engine).authenticate(token, now=at)
        if isinstance(found, AuthFailure):
            request.state.auth_failure = found
            if limiter is not None:
                limiter.hit("anonymous", request.client.host if request.client else "unknown")
            raise HTTPException(401, detail=REFUSED[found], headers={"WWW-Authenticate": challenge(found)})
        request.state.principal = found
        if limiter is not None:
            limiter.hit("ingest" if permission is Permission.INGEST else "api", found.key_id)
        if not found.may(permission):
            raise HTTPException(
                403, detail=f"a {found.role.value} key does not have the {permission.value} permission"
            )
        return found

    return dependency


def challenge(reason: AuthFailure) -> str:
    """The WWW-Authenticate value: a bare challenge for no key, ``invalid_token`` for a refused one."""
    if reason is AuthFailure.MISSING:
        return "Bearer"
    return f'Bearer error="invalid_token", error_description="{REFUSED[reason]}"'
