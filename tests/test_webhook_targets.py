"""Webhook targets: which URLs citywarn refuses to call, and that an attempt reaches the checked address."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from alerts.webhook_targets import RESPONSE_EXCERPT_BYTES, Poster, UnsafeTarget, check_url, post
from tests.webhook_receiver import Receiver, reply

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Answer ``socket.getaddrinfo`` from ``answers``; returns the names looked up, in order."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        if host not in answers and not host[0].isdigit():  # an IP literal (the connection's) answers itself
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, int(port or 0), 0, 0) if ":" in a else (a, int(port or 0)),
            )
            for a in answers.get(host, [host])
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


# ---- post(): real receivers on loopback ---------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_post_sends_the_body_and_headers_and_reports_the_answer(receiver: Receiver) -> None:
    receiver.answer = lambda h, _r: reply(h, 200, b'{"ok": true}')
    result = post(
        f"http://127.0.0.1:{receiver.port}/hook?a=1",
        b'{"x": 1}',
        {"webhook-id": "msg_1"},
        timeout_s=5,
        allow_private=True,
    )
    assert (result.status_code, result.error, result.response_excerpt) == (200, None, '{"ok": true}')
    assert result.succeeded and result.latency_ms > 0
    [(path, headers, body)] = [(r.path, r.headers, r.body) for r in receiver.requests]
    assert (path, body, headers["webhook-id"]) == ("/hook?a=1", b'{"x": 1}', "msg_1")
    assert headers["host"] == f"127.0.0.1:{receiver.port}"


def test_post_refuses_an_internal_target_without_connecting(receiver: Receiver) -> None:
    result = post(f"http://127.0.0.1:{receiver.port}/hook", b"{}", {}, timeout_s=5, allow_private=False)
    assert result.status_code is None and not result.succeeded
    assert result.error is not None and "loopback" in result.error
    assert receiver.requests == []


def test_post_connects_to_the_address_it_checked_even_if_dns_answers_differently_later(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    # The name's second answer points at another server on the same port: a rebinding attacker's.
    other = Receiver("127.0.0.2", receiver.port)
    try:
        answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"], ["127.0.0.2"]])
        asked: list[str] = []

        def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
            asked.append(host)  # the connection looks up its IP literal too: that answers itself
            found = [host] if host[0].isdigit() else next(answers)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in found]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        result = post(f"http://hooks.test:{receiver.port}/in", b"{}", {}, timeout_s=5, allow_private=True)
    finally:
        other.close()
    assert result.status_code == 204
    assert asked == ["hooks.test", "127.0.0.1"]  # the name resolved once; connected to that answer
    [headers] = [r.headers for r in receiver.requests]
    assert headers["host"] == f"hooks.test:{receiver.port}"
    assert other.requests == []


def test_post_does_not_follow_a_redirect(receiver: Receiver) -> None:
    elsewhere = Receiver()
    try:
        receiver.answer = lambda h, _r: reply(h, 307, b"", location=f"http://127.0.0.1:{elsewhere.port}/x")
        result = post(f"http://127.0.0.1:{receiver.port}/hook", b"{}", {}, timeout_s=5, allow_private=True)
    finally:
        elsewhere.close()
    assert result.status_code == 307 and not result.succeeded
    assert result.error is not None and "not followed" in result.error
    assert elsewhere.requests == []


def test_post_reads_only_the_start_of_a_huge_answer(receiver: Receiver) -> None:
    def huge(h: BaseHTTPRequestHandler, _r: object) -> None:
        h.send_response(500)
        h.send_header("content-length", str(1 << 30))
        h.end_headers()
        with contextlib.suppress(OSError):  # the client hangs up after its few KiB
            for _ in range(1 << 14):
                h.wfile.write(b"x" * (1 << 16))

    receiver.answer = huge
    started = time.monotonic()
    result = post(f"http://127.0.0.1:{receiver.port}/hook", b"{}", {}, timeout_s=10, allow_private=True)
    assert result.status_code == 500
    assert result.response_excerpt == "x" * RESPONSE_EXCERPT_BYTES
    assert time.monotonic() - started < 5  # a GiB would take longer than that on loopback with Python


def test_post_times_out_on_a_receiver_that_does_not_answer(receiver: Receiver) -> None:
    release = threading.Event()

    def held(h: BaseHTTPRequestHandler, _r: object) -> None:
        release.wait(10)
        reply(h, 200, b"")

    receiver.answer = held
    try:
        started = time.monotonic()
        result = post(f"http://127.0.0.1:{receiver.port}/hook", b"{}", {}, timeout_s=0.3, allow_private=True)
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert result.status_code is None
    assert result.error is not None and "timed out" in result.error
    assert elapsed < 3


def test_post_reports_a_refused_connection() -> None:
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        result = post(f"http://127.0.0.1:{port}/hook", b"{}", {}, timeout_s=2, allow_private=True)
    assert result.status_code is None and result.error is not None and "Connect" in result.error


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``hooks.test``, and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=hooks.test",
            ),
            *("-addext", "subjectAltName=DNS:hooks.test", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("name", ["hooks.test", "other.test"])
def test_https_to_the_checked_address_verifies_the_certificate_for_the_urls_host(
    monkeypatch: pytest.MonkeyPatch, certificate: tuple[Path, Path], name: str
) -> None:
    cert, key = certificate
    server_names: list[str | None] = []
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server_tls.sni_callback = lambda _sock, server_name, _ctx: server_names.append(server_name)  # type: ignore[assignment,func-returns-value]
    receiver = Receiver(tls=server_tls)
    fake_dns(monkeypatch, {"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    poster = Poster(verify=ssl.create_default_context(cafile=str(cert)))
    try:
        url = f"https://{name}:{receiver.port}/in"
        result = poster.post(url, b"{}", {}, timeout_s=5, allow_private=True)
    finally:
        poster.close()
        receiver.close()
    assert server_names == [name]  # TLS named the URL's host, though the connection went to an address
    if name == "hooks.test":
        assert (result.status_code, result.error) == (204, None)
        [r] = receiver.requests
        assert r.headers["host"] == f"hooks.test:{receiver.port}"
    else:  # the certificate is not for the URL's host: refused, nothing sent
        assert (
            result.status_code is None and result.error is not None and "certificate" in result.error.lower()
        )
        assert receiver.requests == []
