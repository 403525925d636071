"""The dependency every secured route declares: ``Depends(require(Permission.X))``.

It reads ``Authorization: Bearer <key>`` through FastAPI's ``HTTPBearer``, so
the OpenAPI document names the security scheme on each route that uses it.
No key, or one refused, is a 401 with ``WWW-Authenticate: Bearer`` (plus
``error="invalid_token"`` when a key was presented, RFC 6750 section 3); a
valid key without the permission is a 403. The caller is left on
``request.state.principal`` for the audit log, and counted by the rate
limiter when one is installed on ``app.state.rate_limiter``: per key on
success (ingest apart from everything else), per client address on failure.

It is ``async`` so a key the ``AuthCache`` admitted recently costs no trip to
the thread pool: with ingest threads busy in the same process, every hop
between the event loop and a pool thread waits for the GIL (up to the 5 ms
switch interval), and a request's hops added up to most of its latency
(``python -m bench.api``). The database is asked on a pool thread, and so is
a rate limiter whose counts live outside the process.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.api.deps import now, services
from app.auth.keys import AuthCache, AuthFailure, KeyStore
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


# When the app's services carry no settings (tests' small apps), the Settings default.
DEFAULT_AUTH_CACHE_TTL_S = 5.0


def require(permission: Permission | None) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only keys whose role grants ``permission`` (None: any valid key)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        svc: Annotated[Services, Depends(services)],
    ) -> Principal:
        at = now()  # called, not a dependency: FastAPI would run a plain def on a pool thread
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        settings = getattr(svc, "settings", None)
        token = credentials.credentials if credentials is not None else None
        cache = AuthCache.for_engine(
            svc.engine, getattr(settings, "auth_cache_ttl_s", DEFAULT_AUTH_CACHE_TTL_S)
        )
        found: Principal | AuthFailure | None = cache.lookup(token, now=at) if token else None
        if found is None:
            found = await run_in_threadpool(KeyStore(svc.engine, cache).authenticate, token, now=at)
        count = _counter(limiter, getattr(settings, "rate_limit_storage_uri", "memory://"))
        if isinstance(found, AuthFailure):
            request.state.auth_failure = found
            if count is not None:
                await count("anonymous", request.client.host if request.client else "unknown")
            raise HTTPException(401, detail=REFUSED[found], headers={"WWW-Authenticate": challenge(found)})
        request.state.principal = found
        if count is not None:
            await count("ingest" if permission is Permission.INGEST else "api", found.key_id)
        if permission is not None and not found.may(permission):
            raise HTTPException(
                403, detail=f"a {found.role.value} key does not have the {permission.value} permission"
            )
        return found

    return dependency


def _counter(limiter: RateLimiter | None, storage_uri: str) -> Callable[[str, str], Awaitable[None]] | None:
    """``limiter.hit`` as a coroutine: on the event loop for counts in this process (a dict and a
    lock), on a pool thread for counts in Redis (a network round trip must not hold up the loop)."""
    if limiter is None:
        return None
    hit = limiter.hit
    if storage_uri.startswith("memory://"):

        async def local(bucket: str, identity: str) -> None:
            hit(bucket, identity)

        return local

    async def remote(bucket: str, identity: str) -> None:
        await run_in_threadpool(hit, bucket, identity)

    return remote


def challenge(reason: AuthFailure) -> str:
    """The WWW-Authenticate value: a bare challenge for no key, ``invalid_token`` for a refused one."""
    if reason is AuthFailure.MISSING:
        return "Bearer"
    return f'Bearer error="invalid_token", error_description="{REFUSED[reason]}"'
