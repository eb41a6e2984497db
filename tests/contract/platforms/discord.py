"""Discord against tests/fakes/discord_server.py (REST and the Gateway). Joins come over the Gateway, which
the connector polls, so this harness's `updates()` is what the polls returned."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qunflow.connectors.base import InviteLink, Update
from tests.contract.harness import Harness, RawCall, host


class DiscordHarness(Harness):
    platform = "discord"

    def __init__(self, tmp: Path, fake: Any) -> None:
        from qunflow.connectors.discord.connector import DiscordConnector
        from qunflow.connectors.discord.settings import DiscordSettings
        from tests.fakes.discord_server import TOKEN

        self.fake = fake
        settings = DiscordSettings(bot_token=TOKEN, api_base=fake.api_base, public_key=fake.public_key)
        self.connector = DiscordConnector(settings, host(tmp))
        self.connector.start_gateway()
        fake.wait_identified()
        self.seen: list[Update] = []
        self.calls = lambda: []

    def group(self) -> str:
        return str(self.fake.make_guild("Newbies"))

    def broken_group(self) -> str:
        return str(self.fake.make_guild("Elsewhere", permissions=0))

    def person(self, name: str) -> str:
        return str(self.fake.person(name))

    def arrive(self, user_id: str, link: InviteLink) -> None:
        self.fake.join(user_id, link.url)
        deadline = time.monotonic() + 10
        while not any(getattr(u, "user_id", None) == user_id for u in self.seen):
            assert time.monotonic() < deadline, "the join never came over the Gateway"
            self.seen.extend(self.connector.poll(0.5))  # type: ignore[attr-defined]

    def direct_messages(self, user_id: str) -> list[str]:
        return [m["content"] for m in self.fake.sent(private=True) if m["user_id"] == user_id]

    def forged(self) -> RawCall:
        body = b'{"type":1}'
        headers = {k.lower(): v for k, v in self.fake.sign(body).items()}
        headers["x-signature-ed25519"] = "00" * 64
        return RawCall("POST", {}, headers, body)

    def updates(self) -> list[Update]:
        return list(self.seen)


@contextmanager
def open_harness(tmp: Path) -> Iterator[Harness]:
    from tests.fakes.discord_server import FakeDiscord

    with FakeDiscord() as fake:
        made = DiscordHarness(tmp, fake)
        try:
            yield made
        finally:
            made.connector.close()  # type: ignore[attr-defined]
