"""WeCom against tests/fakes/wecom_server.py (customer contact API and encrypted callbacks)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qunflow.connectors.base import InviteLink
from tests.contract.harness import Catcher, Harness, RawCall, host


class WeComHarness(Harness):
    platform = "wecom"

    def __init__(self, tmp: Path, fake: Any, catcher: Catcher) -> None:
        from qunflow.connectors.wecom.connector import WeComConnector
        from qunflow.connectors.wecom.settings import WeComSettings

        self.fake = fake
        fake.callback_url = catcher.url
        settings = WeComSettings(corp_id=fake.corp_id, secret=fake.secret, callback_token=fake.token,
                                 aes_key=fake.aes_key, api_base=fake.api_base, staff_user_ids=["zhangsan"])
        self.connector = WeComConnector(settings, host(tmp))
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
def open_harness(tmp: Path) -> Iterator[Harness]:
    from tests.fakes.wecom_server import FakeWeCom

    catcher = Catcher()
    try:
        with FakeWeCom(staff=("zhangsan",)) as fake:
            yield WeComHarness(tmp, fake, catcher)
    finally:
        catcher.close()
