"""The fake Bot API delivers webhooks as the reference server does: one queue per user for join requests and
member changes (in order, one at a time), different queues side by side up to max_connections."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.fakes.telegram_server import TOKEN, FakeTelegram


class SlowHook:
    """A webhook that holds every call until `release` is set, recording when calls start."""

    def __init__(self) -> None:
        self.started: list[dict[str, object]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with hook.lock:
                    hook.started.append(body)
                hook.release.wait(10)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/telegram"


@pytest.fixture
def hooked() -> Iterator[tuple[FakeTelegram, SlowHook]]:
    hook = SlowHook()
    with FakeTelegram() as fake:
        yield fake, hook
    hook.release.set()
    hook.server.shutdown()


def set_webhook(fake: FakeTelegram, url: str, **extra: object) -> httpx.Response:
    return httpx.post(f"{fake.api_base}/bot{TOKEN}/setWebhook", json={"url": url, **extra})


def requests_of(fake: FakeTelegram, names: list[str], chat: str) -> list[str]:
    people = [fake.person(name) for name in names]
    url = httpx.post(f"{fake.api_base}/bot{TOKEN}/createChatInviteLink",
                     json={"chat_id": int(chat), "creates_join_request": True}).json()["result"]["invite_link"]
    for person in people:
        assert fake.open_link(person, url) == "requested"
    return people


def wait_started(hook: SlowHook, count: int, seconds: float = 4.0) -> None:
    for _ in range(int(seconds / 0.02)):
        with hook.lock:
            if len(hook.started) >= count:
                return
        threading.Event().wait(0.02)


def test_different_people_are_delivered_side_by_side(hooked: tuple[FakeTelegram, SlowHook]) -> None:
    fake, hook = hooked
    assert set_webhook(fake, hook.url).json()["ok"]
    requests_of(fake, ["Ann", "Ben", "Cai"], fake.make_group("G"))
    wait_started(hook, 3)
    assert len(hook.started) == 3  # all three in flight before any was answered
    hook.release.set()
    assert len(fake.wait_delivered(3)) == 3


def test_max_connections_caps_the_calls_in_flight(hooked: tuple[FakeTelegram, SlowHook]) -> None:
    fake, hook = hooked
    assert set_webhook(fake, hook.url, max_connections=2).json()["ok"]
    requests_of(fake, ["Ann", "Ben", "Cai"], fake.make_group("G"))
    wait_started(hook, 3, seconds=1.0)
    assert len(hook.started) == 2
    hook.release.set()
    assert len(fake.wait_delivered(3)) == 3
    assert set_webhook(fake, hook.url, max_connections=101).status_code == 400


def test_one_persons_updates_wait_for_each_other(hooked: tuple[FakeTelegram, SlowHook]) -> None:
    fake, hook = hooked
    assert set_webhook(fake, hook.url, allowed_updates=["chat_join_request", "chat_member"]).json()["ok"]
    chat = fake.make_group("G")
    [ann] = requests_of(fake, ["Ann"], chat)
    httpx.post(f"{fake.api_base}/bot{TOKEN}/approveChatJoinRequest", json={"chat_id": int(chat), "user_id": int(ann)})
    wait_started(hook, 2, seconds=1.0)
    assert [list(u)[1] for u in hook.started] == ["chat_join_request"]  # the member update waits its turn
    hook.release.set()
    delivered = fake.wait_delivered(2)
    assert [next(k for k in u if k != "update_id") for u in delivered] == ["chat_join_request", "chat_member"]
