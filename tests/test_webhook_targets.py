"""Webhook targets: which URLs citywarn refuses to call, and that an attempt reaches the checked address."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from alerts.webhook_targets import UnsafeTarget, check_url

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Answer ``socket.getaddrinfo`` from ``answers``; returns the names looked up, in order."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, int(port or 0), 0, 0) if ":" in a else (a, int(port or 0)),
            )
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.8.9.10:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.9/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://[fc00::5]/hook", "private"),
        ("http://100.64.0.1/hook", "shared"),
        ("http://169.254.10.1/hook", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.100.100.200/", "metadata"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://[::]/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://240.0.0.1/hook", "reserved"),
    ],
)
def test_internal_addresses_are_refused_and_allowed_only_when_private_targets_are(
    url: str, says: str
) -> None:
    with pytest.raises(UnsafeTarget, match=says):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)


def test_a_public_address_is_allowed() -> None:
    check_url(f"https://{PUBLIC_V4}/hook?x=1", allow_private=False)
    check_url(f"https://[{PUBLIC_V6}]:8443/hook", allow_private=False)


def test_the_metadata_name_is_refused_without_asking_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"metadata.google.internal": [PUBLIC_V4]})
    with pytest.raises(UnsafeTarget, match="metadata"):
        check_url("http://metadata.google.internal/computeMetadata/v1/", allow_private=False)
    assert asked == []


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "url", ["https://user:pw@hooks.example.com/x", "https://token@hooks.example.com/x", "http://:pw@1.1.1.1/"]
)
def test_credentials_in_the_url_are_refused_even_when_private_targets_are_allowed(
    url: str, allow_private: bool
) -> None:
    with pytest.raises(UnsafeTarget, match="credentials"):
        check_url(url, allow_private=allow_private)


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "file:///etc/passwd", "gopher://1.1.1.1/", "hooks.example.com/x"]
)
def test_only_http_and_https_are_allowed(url: str, allow_private: bool) -> None:
    with pytest.raises(UnsafeTarget, match="only http and https"):
        check_url(url, allow_private=allow_private)


@pytest.mark.parametrize("url", ["http:///path", "https://:443/x", "http://host:notaport/"])
def test_a_url_without_a_usable_host_or_port_is_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_url(url, allow_private=True)


def test_a_name_resolving_to_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"hooks.example.com": ["127.0.0.1"]})
    with pytest.raises(UnsafeTarget, match=r"hooks\.example\.com resolves to 127\.0\.0\.1.*loopback"):
        check_url("https://hooks.example.com/x", allow_private=False)


def test_a_name_is_refused_if_any_of_its_addresses_is_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"hooks.example.com": [PUBLIC_V4, "10.0.0.7"]})
    with pytest.raises(UnsafeTarget, match="private"):
        check_url("https://hooks.example.com/x", allow_private=False)


def test_a_name_resolving_to_public_addresses_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"hooks.example.com": [PUBLIC_V4, PUBLIC_V6]})
    check_url("https://hooks.example.com/x", allow_private=False)


def test_a_name_that_does_not_resolve_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {})
    with pytest.raises(UnsafeTarget, match="does not resolve"):
        check_url("https://nowhere.example.com/x", allow_private=False)


def test_the_real_resolver_answers_localhost_with_loopback() -> None:
    with pytest.raises(UnsafeTarget, match="loopback"):
        check_url("http://localhost:8080/hook", allow_private=False)
