"""Slack: a bot user in a workspace's channels, through the Web API and the Events API (HTTP).

`PLATFORM` is what the registry reads. The connector (and httpx) and the CLI (and typer) load on use.

Slack never says which link brought someone into a channel (member_joined_channel carries only an
optional `inviter`). qunflow's tracked entry into a Slack channel is therefore a request the person makes
to the bot: the entry link opens a direct message with the app, the person sends `join <code>`, and the
bot, having identified them, adds them with conversations.invite (docs/connectors.md, "Slack").
"""

from __future__ import annotations

from typing import Any

from qunflow.connectors.base import Capabilities, Connector, Host
from qunflow.connectors.registry import PlatformSpec
from qunflow.connectors.slack.settings import SlackSettings

CAPABILITIES = Capabilities(
    join_requests=True,  # `join <code>` to the bot is the request; approve_join is conversations.invite
    dm_policy="any",  # conversations.open + chat.postMessage reach any member of the workspace
    dm_window_seconds=None,
    invite_label_max=64,  # the code rides in the person's message, not in a platform field: our own cap
    reports_invite_on_join=False,  # member_joined_channel has no invite; only requests to the bot carry one
    group_capacity_max=None,
    reads_group_messages=True,  # message.channels / message.groups with channels:history, groups:history
    idempotent_sends=False,  # chat.postMessage takes no client key
    single_use_invites=True,  # a pass's code admits its first requester only (services/join.py resolve)
    joins_by_message=True,  # the pages show `join <code>`: Slack's app_redirect link cannot carry it
    removes_members=True,  # conversations.kick (channels:manage, groups:write)
)


def _build(settings: SlackSettings, host: Host) -> Connector:
    from qunflow.connectors.slack.connector import SlackConnector

    return SlackConnector(settings, host)


def _register(connect_app: Any) -> None:
    from qunflow.connectors.slack.cli import register

    register(connect_app)


PLATFORM = PlatformSpec(name="slack", capabilities=CAPABILITIES, settings=SlackSettings, build=_build,
                        cli=_register)
