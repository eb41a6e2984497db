"""The guard every test runs under: a connection off the loopback fails the test (tests/conftest.py)."""

from __future__ import annotations

import socket

import httpx
import pytest


@pytest.mark.parametrize("address", [("192.0.2.10", 443), ("10.1.2.3", 80), ("2001:db8::1", 443, 0, 0)])
def test_a_connection_off_the_loopback_fails(address: tuple) -> None:  # type: ignore[type-arg]
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(AssertionError, match="off the loopback"):
        sock.connect(address)


def test_an_http_client_is_stopped_before_it_reaches_the_network() -> None:
    with pytest.raises(AssertionError, match="off the loopback"):
        httpx.get("http://192.0.2.10/", timeout=1)


def test_loopback_connections_still_work() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
