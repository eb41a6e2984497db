"""qunflow's connector to Telegram: invites, join requests, messages and updates through the Bot API."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from qunflow.connectors.base import Fix, Host, Inbound, InviteLink, SendResult, Update
from qunflow.connectors.telegram import CAPABILITIES
from qunflow.connectors.telegram.api import BotApi
from qunflow.connectors.telegram.settings import TelegramSettings
from qunflow.connectors.telegram.updates import parse_update
from qunflow.errors import InvalidInput, PlatformError, Unauthorized

log = logging.getLogger(__name__)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
# chat_member must be asked for by name: Telegram leaves it out of the default set.
ALLOWED_UPDATES = ["chat_join_request", "chat_member", "message"]
WEBHOOK_PATH = "/hooks/telegram"
TEXT_MAX = 4096  # sendMessage: 1-4096 characters


class TelegramConnector:
    """Implements the `Connector` port over the Bot API; `poll` pulls updates when there is no webhook."""

    platform = "telegram"
    capabilities = CAPABILITIES

    def __init__(self, settings: TelegramSettings, host: Host | None = None, *, api: BotApi | None = None) -> None:
        self.settings = settings
        self.host = host
        self.api = api or BotApi(settings.bot_token, settings.api_base)
        self._offset: int | None = None  # the next getUpdates confirms every update below it

    def __repr__(self) -> str:
        return f"TelegramConnector(api_base={self.settings.api_base!r}, mode={self.settings.mode!r})"

    # --- invites and join requests ---
    def create_invite(self, group_id: str, label: str, *, join_request: bool = False,
                      single_use: bool = False, expires_at: datetime | None = None) -> InviteLink:
        if len(label) > CAPABILITIES.invite_label_max:
            raise InvalidInput(f"invite label {label!r} has {len(label)} characters; Telegram invite link names "
                               f"hold at most {CAPABILITIES.invite_label_max}",
                               zh=f"邀请链接标签 {label!r} 有 {len(label)} 个字符;Telegram 邀请链接名称最多 "
                                  f"{CAPABILITIES.invite_label_max} 个字符")
        # Telegram refuses member_limit on a join-request link; there each request is approved one by one.
        limit = 1 if single_use and not join_request else None
        # expire_date is whole Unix seconds; rounding down keeps the stored expiry no later than Telegram's.
        expire = None if expires_at is None else int(expires_at.replace(tzinfo=UTC).timestamp())
        link = self.api.create_chat_invite_link(_chat(group_id), name=label, creates_join_request=join_request,
                                                member_limit=limit, expire_date=expire)
        url = str(link["invite_link"])
        given = link.get("expire_date")
        stamp = given if isinstance(given, int) else expire
        expiry = None if stamp is None else datetime.fromtimestamp(stamp, UTC).replace(tzinfo=None)
        return InviteLink(url, label, join_request, handle=url, expires_at=expiry)

    def invite_lifetime(self, personal: bool) -> timedelta | None:
        """A gate pass's link lives `pass_link_hours`; an entry point's `entry_link_hours` (0: no expiry)."""
        hours = self.settings.pass_link_hours if personal else self.settings.entry_link_hours
        return timedelta(hours=hours) if hours > 0 else None

    def revoke_invite(self, group_id: str, link: InviteLink) -> None:
        self.api.revoke_chat_invite_link(_chat(group_id), link.handle or link.url)

    def approve_join(self, group_id: str, user_id: str) -> None:
        self.api.approve_chat_join_request(_chat(group_id), _user(user_id))

    def decline_join(self, group_id: str, user_id: str) -> None:
        self.api.decline_chat_join_request(_chat(group_id), _user(user_id))

    def remove_member(self, group_id: str, user_id: str) -> None:
        """Remove, not ban: banChatMember, then unbanChatMember (only_if_banned) so a later invite still works."""
        self.api.ban_chat_member(_chat(group_id), _user(user_id))
        self.api.unban_chat_member(_chat(group_id), _user(user_id))

    # --- messages ---
    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        """To `context` (a join request's user_chat_id, open for 5 minutes) when given, else to the person."""
        return self._send(context or user_id, text)

    def post_to_group(self, group_id: str, text: str, *, idempotency_key: str | None = None) -> SendResult:
        return self._send(group_id, text)

    def _send(self, chat_id: str, text: str) -> SendResult:
        if not 1 <= len(text) <= TEXT_MAX:
            raise InvalidInput(f"a Telegram message holds 1-{TEXT_MAX} characters; this one has {len(text)}",
                               zh=f"Telegram 消息须为 1-{TEXT_MAX} 个字符,这条有 {len(text)} 个")
        message = self.api.send_message(_chat(chat_id), text)
        return SendResult(str(message["message_id"]))

    # --- updates ---
    def receive(self, method: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Inbound:
        """A webhook POST from Telegram: the secret header must match, the body is one Update."""
        expected = self.settings.webhook_secret
        if not expected:
            raise Unauthorized("Telegram webhook refused: no webhook_secret is configured; run "
                               "`qunflow connect telegram --mode webhook` to set the webhook with a secret",
                               zh="已拒绝 Telegram 回调:未配置 webhook_secret;请运行 "
                                  "`qunflow connect telegram --mode webhook`,设置带密钥的回调地址")
        given = next((v for k, v in headers.items() if k.lower() == SECRET_HEADER), None)
        if given is None:
            raise Unauthorized("Telegram webhook refused: the X-Telegram-Bot-Api-Secret-Token header is missing "
                               "(was the webhook set without a secret? run `qunflow connect telegram` again)",
                               zh="已拒绝 Telegram 回调:缺少 X-Telegram-Bot-Api-Secret-Token 请求头(回调是否未设密钥?"
                                  "请重新运行 `qunflow connect telegram`)")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("Telegram webhook refused: the X-Telegram-Bot-Api-Secret-Token header does not "
                               "match webhook_secret (run `qunflow connect telegram` again to reset the webhook)",
                               zh="已拒绝 Telegram 回调:X-Telegram-Bot-Api-Secret-Token 请求头与 webhook_secret 不符"
                                  "(请重新运行 `qunflow connect telegram` 以重设回调)")
        if method.upper() != "POST":
            raise InvalidInput("Telegram webhook: updates arrive as POST requests",
                               zh="Telegram 回调:更新须以 POST 请求送达")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"Telegram webhook: the body is not JSON ({exc})",
                               zh=f"Telegram 回调:请求体不是 JSON({exc})") from exc
        return Inbound(parse_update(data))

    def poll(self, timeout: float) -> list[Update]:
        """Long-poll getUpdates. What this returns is confirmed by the next call only, so updates a crash
        kept from being handled come back to the next process."""
        batch = self.api.get_updates(self._offset, int(timeout), ALLOWED_UPDATES)
        found: list[Update] = []
        for item in batch:
            update_id = item.get("update_id") if isinstance(item, dict) else None
            if isinstance(update_id, int):
                self._offset = max(self._offset or 0, update_id + 1)
            try:
                found.extend(parse_update(item))
            except InvalidInput as exc:  # one bad update must not stop the rest, nor come back forever
                log.warning("skipped a Telegram update: %s", exc)
        return found

    def rewind(self, key: str) -> None:
        """The update `key` was not handled: the next poll asks from it on, so Telegram sends it again."""
        self._offset = min(self._offset or int(key), int(key))

    # --- onboarding ---
    def check_group(self, group_id: str) -> list[str]:
        me = self.api.get_me()
        bot = f"@{me.get('username', me.get('id'))}"
        try:
            member = self.api.get_chat_member(_chat(group_id), int(me["id"]))
        except PlatformError as exc:
            return [Fix(f"the bot {bot} cannot see group {group_id} ({exc}): add the bot to the group and make it "
                        "an administrator",
                        zh=f"机器人 {bot} 看不到群 {group_id}({exc.text('zh')}):请把机器人拉进群并设为管理员")]
        status = member.get("status")
        if status in ("left", "kicked"):
            return [Fix(f"the bot {bot} is not in group {group_id}: add it and make it an administrator with the "
                        "right 'Invite users via link'",
                        zh=f"机器人 {bot} 不在群 {group_id} 里:请把它拉进群,并设为拥有「通过链接邀请用户」"
                           "(Invite users via link)权限的管理员")]
        admin = status in ("administrator", "creator")
        problems: list[str] = []
        if not admin:
            problems.append(Fix(f"the bot {bot} is not an administrator of group {group_id}: promote it (group "
                                "settings > Administrators > Add admin) with the right 'Invite users via link'; "
                                "without it the bot cannot make invite links, answer join requests or see joins",
                                zh=f"机器人 {bot} 不是群 {group_id} 的管理员:请把它设为管理员(群设置 > 管理员 > "
                                   "添加管理员),并打开「通过链接邀请用户」(Invite users via link)权限;否则机器人"
                                   "无法生成邀请链接、处理入群申请,也看不到谁入群"))
        elif not member.get("can_invite_users"):
            problems.append(Fix(f"the bot {bot} lacks the right 'Invite users via link' in group {group_id}: edit "
                                "its administrator rights and turn it on",
                                zh=f"机器人 {bot} 在群 {group_id} 里没有「通过链接邀请用户」(Invite users via link)"
                                   "权限:请编辑它的管理员权限并打开此项"))
        if not admin and not me.get("can_read_all_group_messages"):
            problems.append(Fix(f"the bot {bot} cannot read messages in group {group_id}: turn off privacy mode with "
                                "@BotFather /setprivacy (then remove and re-add the bot), or make the bot an admin",
                                zh=f"机器人 {bot} 读不到群 {group_id} 的消息:请在 @BotFather 用 /setprivacy 关闭隐私"
                                   "模式(然后把机器人移出群再重新拉入),或把机器人设为管理员"))
        return problems

    def connect(self, public_url: str) -> list[str]:
        """Check the token and route updates: setWebhook (webhook mode) or deleteWebhook (polling)."""
        url = f"{public_url.rstrip('/')}{WEBHOOK_PATH}"
        if self.settings.mode == "webhook" and urlsplit(url).scheme != "https" and not _local(self.settings.api_base):
            raise InvalidInput(f"Telegram delivers webhooks to https URLs only, and public_url is {public_url}: "
                               "set public_url to your https address, or use --mode polling",
                               zh=f"Telegram 只向 https 地址推送回调,而 public_url 是 {public_url}:请把 public_url "
                                  "设为你的 https 地址,或改用 --mode polling")
        me = self.api.get_me()
        lines = [f"bot: @{me.get('username')} (id {me.get('id')})"]
        if self.settings.mode == "webhook":
            self.api.set_webhook(url, self.settings.webhook_secret, ALLOWED_UPDATES)
            lines += ["mode: webhook", f"webhook: {url}"]
        else:
            self.api.delete_webhook()
            # allowed_updates takes effect from the call that sets it (and chat_member is off by default), so
            # set it now: joins before the first poll would be lost. No offset: nothing is confirmed.
            self.api.get_updates(None, 0, ALLOWED_UPDATES, limit=1)
            lines += ["mode: polling (`qunflow serve` pulls updates with getUpdates)"]
        return lines


def _chat(chat_id: str) -> int | str:
    """Numeric ids go as JSON numbers; `@username` stays a string."""
    try:
        return int(chat_id)
    except ValueError:
        return chat_id


def _user(user_id: str) -> int:
    try:
        return int(user_id)
    except ValueError:
        raise InvalidInput(f"{user_id!r} is not a Telegram user id (a number)",
                           zh=f"{user_id!r} 不是 Telegram 用户 ID(应为数字)") from None


def _local(api_base: str) -> bool:
    """A Bot API server on this machine or network (self-hosted, or a test double) also posts to http URLs."""
    host = urlsplit(api_base).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private
