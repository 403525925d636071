"""Where a webhook may be sent: refusing addresses inside the city's network (SSRF), and posting.

A subscription's URL is the integrator's to choose, so without these checks it could make citywarn
call its own metadata service, a database port on loopback, or anything on the EOC's private
network. The URL is checked when a subscription is created or changed, and again before every
attempt, and the attempt connects to the very address that was checked, so a DNS answer that
changes between check and connect (rebinding) reaches nothing new.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata services: AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.google.internal."})
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598


class UnsafeTarget(ValueError):
    """A webhook URL citywarn will not call; the message says why, for the integrator to read."""


@dataclass(frozen=True)
class Target:
    """A URL that passed the checks, with the one address an attempt may connect to."""

    scheme: str
    host: str  # as written in the URL (lower-cased, IPv6 without brackets)
    port: int
    address: IPAddress | None  # None only when private targets are allowed and the check skipped DNS
    path_and_query: str

    @property
    def host_header(self) -> str:
        """``Host:`` as the URL names it: the default port left out, an IPv6 literal in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise :class:`UnsafeTarget` unless ``url`` is one citywarn may post webhooks to."""
    resolve_target(url, allow_private=allow_private, resolve=not allow_private)


def resolve_target(url: str, *, allow_private: bool, resolve: bool = True) -> Target:
    """Check ``url`` and pick the address to connect to, resolving the host name once.

    Every address a name resolves to is checked, not only the first: otherwise a name with one
    public and one private answer would pass and the connection might take the private one.
    """
    scheme, host, port, path_and_query = _parse(url)
    if not allow_private and host.rstrip(".") + "." in METADATA_NAMES:
        raise UnsafeTarget(f"{host} is a cloud metadata service, not a webhook receiver")
    literal = _literal_address(host)
    if literal is not None:
        addresses = [literal]
    elif resolve:
        addresses = _resolve(host, port)
    else:
        return Target(scheme, host, port, None, path_and_query)
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                shown = host if literal is not None else f"{host} resolves to {address}, which"
                raise UnsafeTarget(f"{shown} is {reason}; webhooks go to public addresses only")
    return Target(scheme, host, port, addresses[0], path_and_query)


def refusal(address: IPAddress) -> str | None:
    """Why a webhook may not go to ``address`` (a phrase), or None if it may."""
    address = _unwrap(address)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def _parse(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsafeTarget(f"not a valid URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeTarget(f"only http and https URLs are allowed, not {scheme or 'a URL without a scheme'}")
    if "@" in parts.netloc:
        raise UnsafeTarget(
            "credentials in the URL (user:password@) are not allowed; authenticate by the signature"
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeTarget("the URL has no host")
    path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or (443 if scheme == "https" else 80), path_and_query


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise UnsafeTarget(f"{host} does not resolve: {e}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeTarget(f"{host} does not resolve to any address")
    return addresses


def _unwrap(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is judged as the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# The start of a receiver's answer kept for the operators; the rest is never read.
RESPONSE_EXCERPT_BYTES = 4096
# Receivers keep a pooled connection each (per host, for TLS); beyond this many, connections are one-off.
MAX_POOLED_HOSTS = 64


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to: the status code, or None and an error when no answer came."""

    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Poster:
    """Posts webhooks to checked addresses, reusing connections where that cannot mix up receivers.

    The request goes to the IP address that was checked, with ``Host:`` naming the URL's host and,
    for https, the TLS server name set to it, so the certificate is verified for the real name.
    Plain http shares one pool (the pool is keyed by address and ``Host:`` says which site); https
    keeps a pool per host name, because a TLS connection verified for one name must not carry
    another name's requests to the same address. Thread-safe: one per worker, shared by its threads.
    """

    def __init__(
        self, *, excerpt_bytes: int = RESPONSE_EXCERPT_BYTES, verify: ssl.SSLContext | bool = True
    ) -> None:
        self.excerpt_bytes = excerpt_bytes
        self._verify = verify  # the system's trusted CAs; a context of its own only in tests
        self._plain = _client(verify)
        self._tls: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        self._closed = False

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float, allow_private: bool
    ) -> AttemptResult:
        """One attempt: resolve and check once, connect to that address, never follow a redirect."""
        started = time.monotonic()
        try:
            target = resolve_target(url, allow_private=allow_private)
        except UnsafeTarget as e:
            return AttemptResult(None, _ms_since(started), f"unsafe target: {e}", "")
        assert target.address is not None  # resolve_target resolved
        host = f"[{target.address}]" if target.address.version == 6 else str(target.address)
        request_headers = {**headers, "host": target.host_header, "accept-encoding": "identity"}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        client, one_off = self._client_for(target)
        try:
            with client.stream(
                "POST",
                f"{target.scheme}://{host}:{target.port}{target.path_and_query}",
                content=body,
                headers=request_headers,
                timeout=httpx.Timeout(timeout_s),
                extensions=extensions,
            ) as response:
                latency_ms = _ms_since(started)
                excerpt = self._excerpt(response, deadline=started + timeout_s)
        except httpx.TimeoutException as e:
            return AttemptResult(None, _ms_since(started), f"timed out after {timeout_s:g} s ({e!r})", "")
        except httpx.HTTPError as e:
            return AttemptResult(None, _ms_since(started), f"{type(e).__name__}: {e}", "")
        finally:
            if one_off:
                client.close()
        error = None
        if 300 <= response.status_code < 400:
            location = response.headers.get("location", "")
            error = f"redirect ({response.status_code}) to {location!r} not followed"
        return AttemptResult(response.status_code, latency_ms, error, excerpt)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients = [self._plain, *self._tls.values()]
            self._tls.clear()
        for client in clients:
            client.close()

    def _client_for(self, target: Target) -> tuple[httpx.Client, bool]:
        """The pooled client for this target, or a one-off one (to close after use)."""
        if target.scheme == "http":
            return self._plain, False
        with self._lock:
            client = self._tls.get(target.host)
            if client is None and not self._closed and len(self._tls) < MAX_POOLED_HOSTS:
                client = self._tls[target.host] = _client(self._verify)
        return (client, False) if client is not None else (_client(self._verify), True)

    def _excerpt(self, response: httpx.Response, *, deadline: float) -> str:
        """The start of the body, streamed: a receiver answering gigabytes costs a few KiB."""
        kept = bytearray()
        for chunk in response.iter_raw(self.excerpt_bytes):
            kept += chunk
            if len(kept) >= self.excerpt_bytes or time.monotonic() > deadline:
                break
        return bytes(kept[: self.excerpt_bytes]).decode("utf-8", errors="replace")


def post(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float, allow_private: bool
) -> AttemptResult:
    """One attempt on a connection of its own (see :class:`Poster` to reuse connections)."""
    poster = Poster()
    try:
        return poster.post(url, body, headers, timeout_s=timeout_s, allow_private=allow_private)
    finally:
        poster.close()


# As many connections as a worker may have attempts in flight (the webhook_concurrency setting's
# bound): past httpx's default of 100, attempts would queue for a connection inside httpx, and that
# wait would count against their timeout.
MAX_CONNECTIONS = 256


def _client(verify: ssl.SSLContext | bool) -> httpx.Client:
    # trust_env=False: a proxy from the environment would connect on our behalf, past the checks.
    return httpx.Client(
        follow_redirects=False,
        trust_env=False,
        verify=verify,
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=32),
    )


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000
