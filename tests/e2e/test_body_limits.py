"""Request bodies are capped before they are read: a 300 MiB upload to `qunflow serve` is refused early,
over real HTTP on loopback, and the server's memory does not grow by the body's size."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from qunflow.domain.access import TOKEN_SCOPES
from qunflow.services.tokens import create_token
from qunflow.web.limits import EVENTS_CAP, FORM_CAP, HOOK_CAP, MIB
from qunflow.workspace import init_workspace
from tests.serve_process import ServeProcess

HUGE = 300 * MIB
SOCKET_BUFFERS = 16 * MIB  # what the kernel may have taken from the client but the server not yet read


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, str]]:
    home = tmp_path_factory.mktemp("limits") / "ws"
    ws = init_workspace(home)
    token = create_token(ws.engine, "limits", sorted(TOKEN_SCOPES))
    ws.close()
    with ServeProcess(home) as server:
        yield server, token


def stream(port: int, path: str, total: int, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST a chunked body of `total` bytes, stopping as soon as the server answers.
    Returns how many body bytes were sent and what the server answered."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    chunk = b"a" * (256 * 1024)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n{head}\r\n".encode())
        try:
            while sent < total:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(frame)
                sent += len(chunk)
            else:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server closed the connection after answering
            pass
        try:
            while data := sock.recv(65536):  # to the end: each refusal closes the connection
                answer += data
        except OSError:
            pass
    return sent, answer


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, orjson.loads(body).get("error", "") if body.startswith(b"{") else ""


@pytest.mark.parametrize(("path", "cap", "needs_token"), [
    ("/hooks/sandbox", HOOK_CAP, False),
    ("/api/v1/events", EVENTS_CAP, True),
    ("/j/spring", FORM_CAP, False),
])
def test_a_streamed_300_mib_body_is_refused_at_the_cap(served: tuple[ServeProcess, str], path: str, cap: int,
                                                       needs_token: bool) -> None:
    server, token = served
    headers = {"Content-Type": "application/json" if path.startswith("/api") else "application/x-www-form-urlencoded"}
    if needs_token:
        headers["Authorization"] = f"Bearer {token}"
    before = server.peak_memory()
    sent, answer = stream(server.port, path, HUGE, headers)
    status, error = status_and_error(answer)
    assert status == 413, answer[:300]
    assert "larger than" in error
    assert sent <= cap + SOCKET_BUFFERS, f"{sent / MIB:.0f} MiB were sent before the refusal"
    assert server.peak_memory() - before < 64 * MIB
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_declared_length_over_the_cap_is_refused_before_the_body(served: tuple[ServeProcess, str]) -> None:
    server, _token = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"POST /hooks/sandbox HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {HUGE}\r\n\r\n".encode())
        answer = b""
        while data := sock.recv(65536):  # no body byte sent: the answer comes anyway, and the connection closes
            answer += data
    status, error = status_and_error(answer)
    assert status == 413
    assert error == "the request body is larger than 1 MiB, the limit for this address"


def test_a_body_within_the_cap_still_works(served: tuple[ServeProcess, str]) -> None:
    server, token = served
    events = [{"event_id": f"e{i}", "type": "message", "ts": "2026-03-01T00:00:00Z", "member_id": "m1",
               "properties": {"text": "x" * 1000}} for i in range(200)]  # about 250 KiB: over the form cap
    response = httpx.post(f"{server.url}/api/v1/events", json=events, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 200
    small_form = httpx.post(f"{server.url}/console/inbox/1/done", content=b"x" * (FORM_CAP + 1),
                            headers={"content-type": "application/x-www-form-urlencoded"})
    assert small_form.status_code == 413


def test_a_route_that_answers_without_reading_closes_the_connection(served: tuple[ServeProcess, str]) -> None:
    server, _token = served
    sent, answer = stream(server.port, "/console/no-such-page", HUGE, {"Content-Type": "text/plain"})
    assert status_and_error(answer)[0] == 404
    assert sent <= SOCKET_BUFFERS, f"{sent / MIB:.0f} MiB were sent before the answer"
