"""How long Telegram invite links live: the settings and the connector's lifetime (no network)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from qunflow.connectors.telegram import CAPABILITIES
from qunflow.connectors.telegram.api import BotApi
from qunflow.connectors.telegram.connector import TelegramConnector
from qunflow.connectors.telegram.settings import TelegramSettings
from tests.fakes.telegram_server import TOKEN


def connector(**fields: object) -> TelegramConnector:
    settings = TelegramSettings(bot_token=TOKEN, **fields)  # type: ignore[arg-type]
    return TelegramConnector(settings, api=BotApi(TOKEN, "http://127.0.0.1:9"))


def test_telegram_links_expire_and_say_so() -> None:
    assert CAPABILITIES.expiring_invites


def test_a_pass_link_lives_a_day_and_an_entry_link_forever_by_default() -> None:
    made = connector()
    assert made.invite_lifetime(personal=True) == timedelta(hours=24)
    assert made.invite_lifetime(personal=False) is None


def test_the_operator_sets_both_lifetimes() -> None:
    made = connector(pass_link_hours=2, entry_link_hours=72)
    assert made.invite_lifetime(personal=True) == timedelta(hours=2)
    assert made.invite_lifetime(personal=False) == timedelta(hours=72)


@pytest.mark.parametrize("fields", [{"pass_link_hours": 0}, {"pass_link_hours": -1}, {"pass_link_hours": 0.1},
                                    {"entry_link_hours": -2}, {"entry_link_hours": 0.05},
                                    {"entry_link_hours": 24 * 400}])
def test_a_lifetime_out_of_range_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        connector(**fields)
