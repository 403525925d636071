"""Ports chosen for children to listen on stay out of the range outgoing connections draw from."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest

from ingest.broker import free_port

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not EPHEMERAL.exists(), reason="Linux names its ephemeral range in /proc")
def test_a_free_port_is_below_the_ephemeral_range_and_can_be_bound() -> None:
    low = int(EPHEMERAL.read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(10_000 <= p < low for p in ports)
    for port in ports:
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_chosen() -> None:
    held = []
    try:
        for _ in range(50):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", free_port()))
            s.listen()
            held.append(s)
        assert len({s.getsockname()[1] for s in held}) == 50
    finally:
        for s in held:
            s.close()
