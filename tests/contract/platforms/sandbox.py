"""The sandbox: the in-process platform, driven through its world."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qunflow.connectors.base import InviteLink
from tests.contract.harness import Harness, RawCall, host


class SandboxHarness(Harness):
    platform = "sandbox"

    def __init__(self, tmp: Path) -> None:
        from qunflow.connectors.sandbox import PLATFORM, SandboxSettings

        self.caught: list[RawCall] = []
        self.connector = PLATFORM.build(SandboxSettings(), host(tmp, self._catch))
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


@contextmanager
def open_harness(tmp: Path) -> Iterator[Harness]:
    yield SandboxHarness(tmp)
