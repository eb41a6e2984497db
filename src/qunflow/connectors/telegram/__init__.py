"""Telegram: a bot in groups and supergroups, through the Bot API (webhook or long polling).

`PLATFORM` is what the registry reads. The connector (and httpx) and the CLI (and typer) load on use.
"""

from __future__ import annotations

from typing import Any

from qunflow.connectors.base import Capabilities, Connector, Host
from qunflow.connectors.registry import PlatformSpec
from qunflow.connectors.telegram.settings import TelegramSettings

CAPABILITIES = Capabilities(
    join_requests=True,
    dm_policy="join_request_window",
    dm_window_seconds=300,  # ChatJoinRequest.user_chat_id: "for 5 minutes ... until the join request is processed"
    invite_label_max=32,  # createChatInviteLink name: 0-32 characters
    reports_invite_on_join=True,  # ChatMemberUpdated.invite_link and ChatJoinRequest.invite_link
    group_capacity_max=200_000,  # a supergroup's size limit
    reads_group_messages=True,  # with privacy mode off or the bot an admin (check_group says which)
    idempotent_sends=False,  # sendMessage takes no client key
    single_use_invites=True,  # member_limit=1
    expiring_invites=True,  # createChatInviteLink expire_date
    removes_members=True,  # banChatMember then unbanChatMember (the bot needs can_restrict_members)
)


def _build(settings: TelegramSettings, host: Host) -> Connector:
    from qunflow.connectors.telegram.connector import TelegramConnector

    return TelegramConnector(settings, host)


def _register(connect_app: Any) -> None:
    from qunflow.connectors.telegram.cli import register

    register(connect_app)


PLATFORM = PlatformSpec(name="telegram", capabilities=CAPABILITIES, settings=TelegramSettings,
                        build=_build, cli=_register, polls=True)
