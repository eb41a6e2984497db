"""Slack against tests/fakes/slack_server.py (the Web API and signed Events API deliveries).

Arriving through a tracked link on Slack is writing the join code to the app (the link opens that DM):
the call qunflow catches is the signed message.im event carrying it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qunflow.connectors.base import InviteLink
from tests.contract.harness import Catcher, Harness, RawCall, host


class SlackHarness(Harness):
    platform = "slack"

    def __init__(self, tmp: Path, fake: Any, catcher: Catcher) -> None:
        from qunflow.connectors.slack.connector import SlackConnector
        from qunflow.connectors.slack.settings import SlackSettings

        self.fake = fake
        fake.events_url = catcher.url
        settings = SlackSettings(bot_token=fake.bot_token, signing_secret=fake.signing_secret,
                                 api_base=fake.api_base)
        self.connector = SlackConnector(settings, host(tmp))
        self.calls = lambda: list(catcher.calls)

    def group(self) -> str:
        return str(self.fake.make_channel("newbies"))

    def broken_group(self) -> str:
        return str(self.fake.make_channel("elsewhere", bot_member=False))

    def person(self, name: str) -> str:
        return str(self.fake.person(name))

    def arrive(self, user_id: str, link: InviteLink) -> None:
        self.fake.dm(user_id, f"join {link.label}")

    def direct_messages(self, user_id: str) -> list[str]:
        return list(self.fake.direct_messages(user_id))

    def forged(self) -> RawCall:
        body = self.fake.envelope({"type": "member_joined_channel", "user": "U1", "channel": "C1"})
        headers = {k.lower(): v for k, v in self.fake.signed(body, secret="0" * 32).items()}
        return RawCall("POST", {}, headers, body)


@contextmanager
def open_harness(tmp: Path) -> Iterator[Harness]:
    from tests.fakes.slack_server import FakeSlack

    catcher = Catcher()
    try:
        with FakeSlack() as fake:
            yield SlackHarness(tmp, fake, catcher)
    finally:
        catcher.close()


