"""Discord: a bot in servers, over the REST API and the Gateway (hikari keeps the Gateway session).

`PLATFORM` is what the registry reads. The connector (httpx, hikari) and the CLI (typer) load on use.
"""

from __future__ import annotations

from typing import Any

from qunflow.connectors.base import Capabilities, Connector, Host
from qunflow.connectors.discord.settings import DiscordSettings
from qunflow.connectors.registry import PlatformSpec

CAPABILITIES = Capabilities(
    join_requests=False,  # a Discord invite admits at once; there is nothing to approve
    dm_policy="any",  # a bot may message a member of a server it shares, unless they closed DMs (50007)
    dm_window_seconds=None,
    invite_label_max=32,  # the label stays with qunflow (Discord invites carry none): kept short like the others
    reports_invite_on_join=False,  # GUILD_MEMBER_ADD has no invite: attributed by use counts, or not at all
    group_capacity_max=None,  # servers hold far more than a community's tier needs
    reads_group_messages=True,  # with the MESSAGE_CONTENT intent (privileged)
    idempotent_sends=True,  # messages take a nonce with enforce_nonce
    single_use_invites=True,  # max_uses=1
    expiring_invites=False,  # qunflow's invites never expire (max_age=0); an expiring one would be guessed
    # A group is a whole server (or a server's tier role): taking someone out would mean kicking them off the
    # server (DELETE /guilds/{id}/members/{user}), far more than leaving a tier. Moderators do it by hand.
    removes_members=False,
)


def _build(settings: DiscordSettings, host: Host) -> Connector:
    from qunflow.connectors.discord.connector import DiscordConnector

    return DiscordConnector(settings, host)


def _register(connect_app: Any) -> None:
    from qunflow.connectors.discord.cli import register

    register(connect_app)


PLATFORM = PlatformSpec(name="discord", capabilities=CAPABILITIES, settings=DiscordSettings,
                        build=_build, cli=_register, polls=True)
