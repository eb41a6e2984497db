"""Telegram against tests/fakes/telegram_server.py (the Bot API and its webhook)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qunflow.connectors.base import InviteLink
from tests.contract.harness import Catcher, Harness, RawCall, host


class TelegramHarness(Harness):
    platform = "telegram"

    def __init__(self, tmp: Path, fake: Any, catcher: Catcher) -> None:
        from qunflow.connectors.telegram.connector import TelegramConnector
        from qunflow.connectors.telegram.settings import TelegramSettings
        from tests.fakes.telegram_server import TOKEN

        self.fake, self.secret = fake, secrets.token_urlsafe(16)
        settings = TelegramSettings(bot_token=TOKEN, api_base=fake.api_base, webhook_secret=self.secret,
                                    mode="webhook")
        self.connector = TelegramConnector(settings, host(tmp))
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


@contextmanager
def open_harness(tmp: Path) -> Iterator[Harness]:
    from tests.fakes.telegram_server import FakeTelegram

    catcher = Catcher()
    try:
        with FakeTelegram() as fake:
            yield TelegramHarness(tmp, fake, catcher)
    finally:
        catcher.close()
