"""The connector port: what qunflow needs from a chat platform, shaped on PLATFORMS.md.

Every platform (the sandbox, Telegram, WeCom, Feishu, Slack, Discord) is one module implementing
`Connector`. Inbound traffic is verified and parsed into typed updates; outbound calls return
a `SendResult` or raise `RateLimited` (with the platform's retry_after) or `PlatformError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

DmPolicy = Literal[
    "any",                  # Slack, Discord: a bot may message a new member
    "after_start",          # Telegram: only people who started the bot ...
    "join_request_window",  # ... or who have a pending join request (5 minutes)
    "callback_window",      # WeCom: one welcome call within ~20 s of the add-contact callback
]


@dataclass(frozen=True)
class Capabilities:
    join_requests: bool  # joins can be requests that we approve or decline
    dm_policy: DmPolicy
    dm_window_seconds: int | None  # how long the private-message window stays open, if limited
    invite_label_max: int  # attribution that rides on an invite link (WeCom state: 30)
    reports_invite_on_join: bool  # does a join tell us which invite was used? (Discord: no)
    group_capacity_max: int | None  # WeCom customer groups: 500; WeChat QR joins stop at 200
    reads_group_messages: bool  # needs privacy mode off / message-content intent / scope
    # Sends carry a key the platform deduplicates on (Feishu `uuid`, Discord `nonce`): a send whose
    # outcome a crash hid can be repeated safely. Without it, such a send goes to the dead letters.
    idempotent_sends: bool = False


@dataclass(frozen=True)
class InviteLink:
    url: str
    label: str
    join_request: bool


@dataclass(frozen=True)
class SendResult:
    message_id: str


@dataclass(frozen=True)
class Update:
    platform: str
    at: datetime  # naive UTC


@dataclass(frozen=True)
class MemberJoined(Update):
    group_id: str
    user_id: str
    display_name: str
    invite_label: str | None  # None: the platform did not say which invite was used
    dm_context: str | None = None  # e.g. a welcome code valid for one call


@dataclass(frozen=True)
class JoinRequested(Update):
    group_id: str
    user_id: str
    display_name: str
    invite_label: str | None


@dataclass(frozen=True)
class MemberLeft(Update):
    group_id: str
    user_id: str


@dataclass(frozen=True)
class MessagePosted(Update):
    user_id: str
    text: str
    group_id: str | None  # None: a private message to the bot
    message_id: str | None = None  # the platform's id, when it gives one (keys replies to this message)


class Connector(Protocol):
    platform: str
    capabilities: Capabilities

    def create_invite(self, group_id: str, label: str, *, join_request: bool = False) -> InviteLink:
        """A tracked invite link into a group; `label` comes back on the join."""
        ...

    def approve_join(self, group_id: str, user_id: str) -> None: ...

    def decline_join(self, group_id: str, user_id: str) -> None: ...

    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        """A private message; `context` carries a window token (welcome code, request id)."""
        ...

    def post_to_group(self, group_id: str, text: str, *, idempotency_key: str | None = None) -> SendResult: ...

    def parse_updates(self, headers: Mapping[str, str], body: bytes) -> list[Update]:
        """Verify an inbound call (signature) and parse it; raises Unauthorized or InvalidInput."""
        ...
