"""The connector port: what qunflow needs from a chat platform, shaped on PLATFORMS.md.

Every platform (the sandbox, Telegram, WeCom, Feishu, Slack, Discord) is one folder implementing
`Connector` plus one line in `connectors.registry`. Inbound HTTP calls are verified and parsed into
typed updates (`receive`); outbound calls return a `SendResult` or raise `RateLimited` (with the
platform's retry_after), `Unreachable` (the person blocked the bot, the window closed) or
`PlatformError`. Services never test a platform's name: they read its `Capabilities`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

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
    invite_label_max: int  # attribution that rides on an invite link (WeCom state: 30, Telegram name: 32)
    reports_invite_on_join: bool  # does a join tell us which invite was used? (Discord: no)
    group_capacity_max: int | None  # WeCom customer groups: 500; WeChat QR joins stop at 200
    reads_group_messages: bool  # needs privacy mode off / message-content intent / scope
    # Sends carry a key the platform deduplicates on (Feishu `uuid`, Discord `nonce`): a send whose
    # outcome a crash hid can be repeated safely. Without it, such a send goes to the dead letters.
    idempotent_sends: bool = False
    # The platform can say whether a message with a given key arrived (`find_sent`): a send whose outcome
    # a crash hid is then settled by asking, not guessed. Telegram and WeCom cannot tell.
    finds_sends: bool = False
    # An invite link can be limited to one person (Telegram member_limit=1, or a join-request link
    # named per person): a forwarded link then cannot bring strangers in under someone else's name.
    single_use_invites: bool = False
    # A bot post lands in the group at once. WeCom: a group message is a mass-send task that staff confirm,
    # so the per-join welcome menu is not posted there (a group welcome template is WeCom's way).
    posts_to_groups: bool = True
    # An invite link can carry an expiry the platform enforces (Telegram expire_date). qunflow then asks the
    # connector's `ExpiresInvites.invite_lifetime`, never hands out an expired link and revokes it.
    expiring_invites: bool = False
    # The person asks in by sending the link's label to the bot (Slack: a channel has no invite link that comes
    # back on the join, so the tracked entry is a message to the bot). The landing and ticket pages then show
    # the message to send, since the link itself cannot carry it.
    joins_by_message: bool = False
    # The bot can remove a member from a group (`RemovesMembers.remove_member`): a tier move whose rule says
    # leave_old then takes them out of the old group. Elsewhere staff are asked to (an inbox item).
    removes_members: bool = False


def api_base(value: str, example: str) -> str:
    """A connector's `api_base` setting, checked: an http(s) URL with a host, without a trailing slash (the
    fake platforms in the tests are reached through it)."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(f"{value!r} must be an http(s) URL such as {example}",
                           zh=f"{value!r} 须为 http(s) 网址,例如 {example}")
    return value


class SettingError(ValueError):
    """A settings validator's refusal with its Chinese text (`zh`); pydantic keeps the exception in the
    error's `ctx`, where `registry.settings_refusal` finds it."""

    def __init__(self, message: str, *, zh: str) -> None:
        super().__init__(message)
        self.zh = zh


class Fix(str):
    """One problem `check_group` reports: the English text (the string itself) with its Chinese (`zh`), so
    `group add` can refuse in the terminal's language."""

    zh: str

    def __new__(cls, message: str, *, zh: str) -> Fix:
        made = super().__new__(cls, message)
        made.zh = zh
        return made


def fix_text(problem: str, lang: str) -> str:
    """A `check_group` problem in `lang`: a plain string (a connector outside this package) stays as it is."""
    return problem.zh if lang == "zh" and isinstance(problem, Fix) else str(problem)


@dataclass(frozen=True)
class InviteLink:
    url: str
    label: str
    join_request: bool
    # What opening the link shows: a URL to follow, or a picture to scan (WeCom QR codes).
    qr_url: str | None = None
    # The platform's handle to revoke the link with (Telegram: the link itself; WeCom: config_id).
    handle: str | None = None
    expires_at: datetime | None = None  # naive UTC; None: the link does not expire


@dataclass(frozen=True)
class SendResult:
    message_id: str


@dataclass(frozen=True)
class Update:
    platform: str
    at: datetime  # naive UTC
    # The platform's id of this delivery (Telegram update_id, a digest of a WeCom callback): an update
    # seen before is not acted on twice. None: the platform gives none (handlers stay idempotent).
    key: str | None = field(default=None, kw_only=True)


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
    dm_context: str | None = None  # Telegram: user_chat_id, the chat to message for 5 minutes


@dataclass(frozen=True)
class ContactAdded(Update):
    """A person added a staff account as a contact (WeCom 联系我): the private-domain entry."""

    staff_id: str
    user_id: str
    display_name: str
    invite_label: str | None  # the contact way's `state`
    dm_context: str | None = None  # WeCom: the WelcomeCode, valid ~20 s and for one call


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


@dataclass(frozen=True)
class Inbound:
    """What one inbound HTTP call carried, and what to answer the platform."""

    updates: list[Update]
    reply: bytes = b'{"ok":true}'
    media_type: str = "application/json"


@dataclass(frozen=True)
class Host:
    """What qunflow gives a connector when it builds one."""

    public_url: str
    home: Path
    clock: Callable[[], datetime]
    secret: str  # a per-workspace secret for signing what the connector hands out
    # Hands an inbound call to qunflow as if it had arrived at /hooks/<platform> (platform, headers, body):
    # for in-process platforms such as the sandbox.
    inbound: Callable[[str, Mapping[str, str], bytes], None] | None = None


class Connector(Protocol):
    platform: str
    capabilities: Capabilities

    def create_invite(self, group_id: str, label: str, *, join_request: bool = False,
                      single_use: bool = False, expires_at: datetime | None = None) -> InviteLink:
        """A tracked invite link into a group; `label` comes back on the join (or join request). `expires_at`
        (naive UTC) is given only to connectors whose capabilities say `expiring_invites`."""
        ...

    def revoke_invite(self, group_id: str, link: InviteLink) -> None:
        """Stop a link from letting anyone else in (used when it was used up, or the group filled)."""
        ...

    def approve_join(self, group_id: str, user_id: str) -> None: ...

    def decline_join(self, group_id: str, user_id: str) -> None: ...

    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        """A private message; `context` carries a window token (welcome code, user_chat_id)."""
        ...

    def post_to_group(self, group_id: str, text: str, *, idempotency_key: str | None = None) -> SendResult: ...

    def receive(self, method: str, query: Mapping[str, str], headers: Mapping[str, str],
                body: bytes) -> Inbound:
        """Verify an inbound call (signature, secret) and parse it; raises Unauthorized or InvalidInput."""
        ...

    def check_group(self, group_id: str) -> list[str]:
        """What stops qunflow from running this group (e.g. the bot is not an admin), as fixes to make."""
        ...


class FindsSends(Protocol):
    """What a connector whose capabilities say `finds_sends` also does."""

    def find_sent(self, idempotency_key: str) -> SendResult | None:
        """The message a send with this key produced, or None when none arrived."""
        ...


class ExpiresInvites(Protocol):
    """What a connector whose capabilities say `expiring_invites` also does."""

    def invite_lifetime(self, personal: bool) -> timedelta | None:
        """How long a new link lives: a gate pass's link (`personal`) or an entry point's; None: no expiry."""
        ...


class RemovesMembers(Protocol):
    """What a connector whose capabilities say `removes_members` also does."""

    def remove_member(self, group_id: str, user_id: str) -> None:
        """Take a person out of a group; they may come back through a new invite later (not a ban)."""
        ...
