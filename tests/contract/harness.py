"""One harness per registered platform for the connector contract suite: a connector pointed at the
platform's local stand-in, and the means to make people act on it. The platform's calls to qunflow are
caught raw (method, query, headers, body), exactly as /hooks/<platform> would receive them."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from qunflow.connectors.base import Connector, Host, InviteLink


@dataclass(frozen=True)
class RawCall:
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Catcher:
    """An HTTP server on loopback that answers 200 and keeps every call (a platform's webhook target)."""

    calls: list[RawCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def _catch(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = urlsplit(self.path)
                catcher.calls.append(RawCall(self.command, dict(parse_qsl(parts.query)),
                                             {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = _catch  # noqa: N815 - http.server's API

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Harness:
    platform: str
    connector: Connector
    calls: Callable[[], list[RawCall]]

    def group(self) -> str: ...

    def broken_group(self) -> str:
        """A chat the bot cannot run (not an admin, not the company's group)."""
        ...

    def person(self, name: str) -> str: ...

    def arrive(self, user_id: str, link: InviteLink) -> None:
        """The person opens the link (scans the code); the platform then calls qunflow."""
        ...

    def direct_messages(self, user_id: str) -> list[str]: ...

    def forged(self) -> RawCall:
        """A call shaped like the platform's, with a wrong signature or secret."""
        ...


def _host(tmp: Path, inbound: Any = None) -> Host:
    return Host(public_url="http://127.0.0.1:9", home=tmp, clock=lambda: datetime.now(UTC).replace(tzinfo=None),
                secret=secrets.token_hex(16), inbound=inbound)


class SandboxHarness(Harness):
    platform = "sandbox"

    def __init__(self, tmp: Path) -> None:
        from qunflow.connectors.sandbox import PLATFORM, SandboxSettings

        self.caught: list[RawCall] = []
        self.connector = PLATFORM.build(SandboxSettings(), _host(tmp, self._catch))
        self.world = self.connector.world  # type: ignore[attr-defined]
        self.calls = lambda: list(self.caught)

    def _catch(self, _platform: str, headers: Any, body: bytes) -> None:
        self.caught.append(RawCall("POST", {}, dict(headers), body))

    def group(self) -> str:
        return str(self.world.create_chat("Newbies"))

    def broken_group(self) -> str:
        return "no-such-chat"

    def person(self, name: str) -> str:
        return f"u{secrets.token_hex(3)}"

    def arrive(self, user_id: str, link: InviteLink) -> None:
        self.world.join(user_id, user_id, link.url.rsplit("/", 1)[-1])

    def direct_messages(self, user_id: str) -> list[str]:
        return [m["text"] for m in self.world.messages(dm_user_id=user_id)]

    def forged(self) -> RawCall:
        return RawCall("POST", {}, {"x-sandbox-signature": "0" * 64}, b'{"kind": "member_left"}')


class TelegramHarness(Harness):
    platform = "telegram"

    def __init__(self, tmp: Path, fake: Any, catcher: Catcher) -> None:
        from qunflow.connectors.telegram.connector import TelegramConnector
        from qunflow.connectors.telegram.settings import TelegramSettings
        from tests.fakes.telegram_server import TOKEN

        self.fake, self.secret = fake, secrets.token_urlsafe(16)
        settings = TelegramSettings(bot_token=TOKEN, api_base=fake.api_base, webhook_secret=self.secret,
                                    mode="webhook")
        self.connector = TelegramConnector(settings, _host(tmp))
        self.connector.api.set_webhook(catcher.url, self.secret,  # type: ignore[attr-defined]
                                       ["chat_join_request", "chat_member", "message"])
        self.calls = lambda: list(catcher.calls)

    def group(self) -> str:
        return str(self.fake.make_group("Newbies"))

    def broken_group(self) -> str:
        return str(self.fake.make_group("Elsewhere", bot_admin=False))

    def person(self, name: str) -> str:
        return str(self.fake.person(name))

    def arrive(self, user_id: str, link: InviteLink) -> None:
        self.fake.open_link(user_id, link.url)
        self.fake.wait_delivered(len(self.fake.delivered) + 1)

    def direct_messages(self, user_id: str) -> list[str]:
        return [m["text"] for m in self.fake.sent() if m["private"] and m["user_id"] == user_id]

    def forged(self) -> RawCall:
        return RawCall("POST", {}, {"x-telegram-bot-api-secret-token": "not-the-secret"}, b'{"update_id": 1}')


class WeComHarness(Harness):
    platform = "wecom"

    def __init__(self, tmp: Path, fake: Any, catcher: Catcher) -> None:
        from qunflow.connectors.wecom.connector import WeComConnector
        from qunflow.connectors.wecom.settings import WeComSettings

        self.fake = fake
        fake.callback_url = catcher.url
        settings = WeComSettings(corp_id=fake.corp_id, secret=fake.secret, callback_token=fake.token,
                                 aes_key=fake.aes_key, api_base=fake.api_base, staff_user_ids=["zhangsan"])
        self.connector = WeComConnector(settings, _host(tmp))
        self.calls = lambda: list(catcher.calls)

    def group(self) -> str:
        return str(self.fake.make_group("zhangsan", "新人群"))

    def broken_group(self) -> str:
        return "wrOtherCompanyChat"

    def person(self, name: str) -> str:
        return f"wm{secrets.token_hex(6)}"

    def arrive(self, user_id: str, link: InviteLink) -> None:
        self.fake.add_contact(user_id, "王小明", link.handle)

    def direct_messages(self, user_id: str) -> list[str]:
        return [w["text"] for w in self.fake.welcome_messages() if w["external_userid"] == user_id]

    def forged(self) -> RawCall:
        encrypted, _signature = self.fake.crypto.encrypt("<xml></xml>", "1764700000", "n1")
        return RawCall("POST", {"msg_signature": "0" * 40, "timestamp": "1764700000", "nonce": "n1"}, {},
                       f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode())


@contextmanager
def harness_for(platform: str, tmp: Path) -> Iterator[Harness]:
    if platform == "sandbox":
        yield SandboxHarness(tmp)
        return
    catcher = Catcher()
    try:
        if platform == "telegram":
            from tests.fakes.telegram_server import FakeTelegram

            with FakeTelegram() as fake:
                yield TelegramHarness(tmp, fake, catcher)
        elif platform == "wecom":
            from tests.fakes.wecom_server import FakeWeCom

            with FakeWeCom(staff=("zhangsan",)) as fake:
                yield WeComHarness(tmp, fake, catcher)
        else:
            raise LookupError(platform)
    finally:
        catcher.close()


HARNESSES = ("sandbox", "telegram", "wecom")
