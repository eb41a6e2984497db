"""Feishu / Lark against tests/fakes/feishu_server.py (open API and signed, encrypted events)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qunflow.connectors.base import InviteLink
from tests.contract.harness import Catcher, Harness, RawCall, host


class FeishuHarness(Harness):
    platform = "feishu"

    def __init__(self, tmp: Path, fake: Any, catcher: Catcher) -> None:
        from qunflow.connectors.feishu.connector import FeishuConnector
        from qunflow.connectors.feishu.settings import FeishuSettings

        self.fake = fake
        fake.callback_url = catcher.url
        settings = FeishuSettings(app_id=fake.app_id, app_secret=fake.app_secret,
                                  verification_token=fake.verification_token, encrypt_key=fake.encrypt_key,
                                  domain=fake.api_base)
        self.connector = FeishuConnector(settings, host(tmp))
        self.catcher = catcher
        self.calls = lambda: list(catcher.calls)

    def group(self) -> str:
        return str(self.fake.make_chat("新人群"))

    def broken_group(self) -> str:
        return str(self.fake.make_chat("机器人不在的群", bot_in=False))

    def person(self, name: str) -> str:
        return "ou_" + secrets.token_hex(16)

    def arrive(self, user_id: str, link: InviteLink) -> None:
        # The person sends the link's code to the bot; qunflow (here: the connector, as /hooks/feishu would)
        # reads it and adds them, and Feishu then reports the member added.
        self.fake.send_text(user_id, link.label)
        call = self.catcher.calls[-1]
        self.connector.receive(call.method, call.query, call.headers, call.body)

    def direct_messages(self, user_id: str) -> list[str]:
        return list(self.fake.messages_to(user_id))

    def forged(self) -> RawCall:
        headers, body = self.fake.signed(self.fake.message_event("ou_x", "hi"))
        return RawCall("POST", {}, {**headers, "x-lark-signature": "0" * 64}, body)


@contextmanager
def open_harness(tmp: Path) -> Iterator[Harness]:
    from tests.fakes.feishu_server import FakeFeishu

    catcher = Catcher()
    try:
        with FakeFeishu() as fake:
            yield FeishuHarness(tmp, fake, catcher)
    finally:
        catcher.close()
