"""qunflow's connector to WeCom 客户联系: external contacts and customer groups, as a self-built app.

Entry has two shapes (settings.entry_mode). "contact": an invite is a 联系我 QR code whose `state` is the
label; the person adds a staff member, the add_external_contact callback brings the state and a
WelcomeCode, and the welcome is sent from the callback (one call, within 20 s). "group": an invite is a
customer-group join code (加入群聊) whose `state` comes back in groupchat/get's member_list. Callbacks are
verified and decrypted here; every update's key is a digest of the decrypted XML, so a redelivered
callback (WeCom retries after 5 s without an answer) maps to the same key.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from qunflow.connectors.base import (
    Capabilities,
    ContactAdded,
    Fix,
    Host,
    Inbound,
    InviteLink,
    MemberJoined,
    MemberLeft,
    SendResult,
    Update,
)
from qunflow.connectors.wecom.api import PERMISSION_ERRCODES, WeComApi, WeComApiError
from qunflow.connectors.wecom.crypto import WeComCrypto
from qunflow.connectors.wecom.events import WeComEvent, envelope_encrypt, parse_event
from qunflow.connectors.wecom.settings import WeComSettings
from qunflow.errors import InvalidInput, PlatformError, Unauthorized, Unreachable

log = logging.getLogger(__name__)

PLATFORM = "wecom"
STATE_MAX = 30  # 联系我 and 加入群聊 `state`: at most 30 characters (92572, 92229)
GROUP_MAX = 500  # customer groups hold at most 500 members
EXTERNAL = 2  # groupchat/get member_list type: 1 staff, 2 external contact
# Without MemChangeList, joins are the external members whose join_time is this close to the event's time.
JOIN_SLACK = timedelta(seconds=10)
CALLBACK_PATH = "/hooks/wecom"
GROUP_WELCOME_MAX_BYTES = 3000  # group_welcome_template text.content: at most 3000 bytes (92366)

CAPABILITIES = Capabilities(
    join_requests=False, dm_policy="callback_window", dm_window_seconds=20, invite_label_max=STATE_MAX,
    reports_invite_on_join=True, group_capacity_max=GROUP_MAX, reads_group_messages=False,
    idempotent_sends=False, posts_to_groups=False,
    # Each invite carries its own `state` (one 联系我 / join code per person or per entry point).
    single_use_invites=True,
    # The 客户群 API reads groups (groupchat/list, groupchat/get) but has no call to remove a customer: the group
    # owner does it in the WeCom app, so a tier move's leave_old becomes an inbox item for staff.
    removes_members=False,
)


def _digest(*parts: str) -> str:
    return "wecom:" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


class WeComConnector:
    """The `Connector` port for WeCom. One instance per workspace; the API client is shared."""

    platform = PLATFORM
    capabilities = CAPABILITIES

    def __init__(self, settings: WeComSettings, host: Host, *, api: WeComApi | None = None) -> None:
        self.settings = settings
        self.host = host
        self.api = api or WeComApi(settings.corp_id, settings.secret, settings.api_base, host.clock)
        self.crypto = WeComCrypto(settings.callback_token, settings.aes_key, settings.corp_id)
        # msgid -> what add_msg_template was asked to do (the senders whose results to read back).
        self._templates: dict[str, dict[str, Any]] = {}

    # --- inbound ---
    def receive(self, method: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Inbound:
        """GET: the URL check (answer the decrypted echostr as plain text); POST: an event."""
        signature = query.get("msg_signature", "")
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not timestamp or not nonce:
            raise InvalidInput("wecom callback: timestamp and nonce are required in the query string",
                               zh="企业微信回调:查询串里须有 timestamp 和 nonce")
        if method.upper() == "GET":
            echostr = query.get("echostr", "")
            if not echostr:
                raise InvalidInput("wecom callback: a GET must carry echostr (the URL check)",
                                   zh="企业微信回调:GET 请求须带 echostr(用于校验回调地址)")
            plain = self.crypto.verify_url(signature, timestamp, nonce, echostr)
            return Inbound([], reply=plain.encode("utf-8"), media_type="text/plain")
        if method.upper() != "POST":
            raise InvalidInput(f"wecom callback: method {method} is not used by WeCom",
                               zh=f"企业微信回调:企业微信不使用 {method} 方法")
        xml = self.crypto.decrypt(signature, timestamp, nonce, envelope_encrypt(body))
        event = parse_event(xml)
        # An empty answer is WeCom's documented "received" (no passive reply, no retry).
        return Inbound(self.updates_for(event, xml), reply=b"", media_type="text/plain")

    def updates_for(self, event: WeComEvent, xml: str) -> list[Update]:
        """The neutral updates one decrypted event means (may call groupchat/get or externalcontact/get)."""
        if event.ignored:
            log.debug("wecom: ignoring %s/%s", event.event, event.change_type)
            return []
        if event.change_type == "add_external_contact":
            return [self._contact_added(event, xml)]
        if event.change_type == "update" and event.update_detail == "add_member":
            return self._members_joined(event, xml)
        if event.change_type == "update" and event.update_detail == "del_member":
            return self._members_left(event, xml)
        # del_external_contact / del_follow_user (a contact removed), create / dismiss of a group and
        # other group updates (name, owner, notice) change nothing qunflow tracks yet.
        return []

    def _contact_added(self, event: WeComEvent, xml: str) -> ContactAdded:
        if not event.user_id or not event.external_user_id:
            raise InvalidInput("wecom callback: add_external_contact without UserID or ExternalUserID",
                               zh="企业微信回调:add_external_contact 事件缺少 UserID 或 ExternalUserID")
        return ContactAdded(
            platform=PLATFORM, at=event.create_time, key=_digest(xml),
            staff_id=event.user_id, user_id=event.external_user_id,
            display_name=self._contact_name(event.external_user_id),
            invite_label=event.state, dm_context=event.welcome_code,
        )

    def _contact_name(self, external_user_id: str) -> str:
        # The name is a nicety; the welcome must not wait on (or fail with) this call.
        try:
            return str(self.api.get_external_contact(external_user_id)["external_contact"].get("name", ""))
        except (PlatformError, KeyError, TypeError) as exc:
            log.warning("wecom: no name for %s (%s)", external_user_id, type(exc).__name__)
            return ""

    def _members_joined(self, event: WeComEvent, xml: str) -> list[Update]:
        chat_id = self._chat_id(event)
        # groupchat/get failing raises: the callback is answered with an error and WeCom delivers it
        # again; the state is only in member_list, so a join without it would lose its attribution.
        members = {str(m.get("userid")): m for m in self.api.groupchat_get(chat_id).get("member_list", [])}
        if event.mem_change_list is not None:
            joined = [members.get(uid, {"userid": uid}) for uid in event.mem_change_list
                      if members.get(uid, {}).get("type", EXTERNAL) == EXTERNAL]
        else:
            since = int((event.create_time - JOIN_SLACK - datetime(1970, 1, 1)).total_seconds())
            joined = sorted((m for m in members.values()
                             if m.get("type") == EXTERNAL and int(m.get("join_time", 0)) >= since),
                            key=lambda m: int(m.get("join_time", 0)), reverse=True)
            if event.mem_change_cnt:
                joined = joined[:event.mem_change_cnt]
        return [MemberJoined(platform=PLATFORM, at=event.create_time, key=_digest(xml, str(m["userid"])),
                             group_id=chat_id, user_id=str(m["userid"]), display_name=str(m.get("name", "")),
                             invite_label=(str(m["state"]) if m.get("state") else None))
                for m in joined]

    def _members_left(self, event: WeComEvent, xml: str) -> list[Update]:
        chat_id = self._chat_id(event)
        if event.mem_change_list is None:
            # Without MemChangeList the callback does not say who left, and groupchat/get only lists who
            # stayed: nothing to report here (a member-list reconciliation can find them later).
            log.info("wecom: %s members left %s without MemChangeList", event.mem_change_cnt, chat_id)
            return []
        return [MemberLeft(platform=PLATFORM, at=event.create_time, key=_digest(xml, uid),
                           group_id=chat_id, user_id=uid)
                for uid in event.mem_change_list]

    @staticmethod
    def _chat_id(event: WeComEvent) -> str:
        if not event.chat_id:
            raise InvalidInput("wecom callback: change_external_chat without ChatId",
                               zh="企业微信回调:change_external_chat 事件缺少 ChatId")
        return event.chat_id

    # --- invites ---
    def create_invite(self, group_id: str, label: str, *, join_request: bool = False,
                      single_use: bool = False, expires_at: datetime | None = None) -> InviteLink:
        """A 联系我 code (contact mode) or a customer-group join code (group mode) with state = label."""
        if len(label) > STATE_MAX:
            raise InvalidInput(f"invite label {label!r} is {len(label)} characters; WeCom's state holds "
                               f"at most {STATE_MAX}",
                               zh=f"邀请标签 {label!r} 有 {len(label)} 个字符;企业微信的 state 最多 {STATE_MAX} 个字符")
        if self.settings.entry_mode == "contact":
            if not self.settings.staff_user_ids:
                raise InvalidInput("entry_mode contact needs staff_user_ids in [platforms.wecom]: the staff "
                                   "members (with the 客户联系 feature) people add through the code",
                                   zh="entry_mode contact 需要在 [platforms.wecom] 里填写 staff_user_ids:"
                                      "即开通了客户联系、扫码后被添加的员工")
            way = self.api.add_contact_way(users=self.settings.staff_user_ids, state=label)
            config_id, qr = str(way["config_id"]), str(way.get("qr_code", ""))
        else:
            config_id = self.api.add_join_way(chat_ids=[group_id], state=label)
            qr = str(self.api.get_join_way(config_id).get("qr_code", ""))
        if not qr:
            raise PlatformError(f"wecom: the new code {config_id} came back without a qr_code",
                                zh=f"企业微信:新建的二维码 {config_id} 没有返回 qr_code")
        return InviteLink(url=qr, label=label, join_request=False, qr_url=qr, handle=config_id)

    def revoke_invite(self, group_id: str, link: InviteLink) -> None:
        if not link.handle:
            raise InvalidInput("a WeCom invite is revoked by its config_id (InviteLink.handle), which is missing",
                               zh="企业微信的邀请要凭 config_id(InviteLink.handle)撤销,但它缺失了")
        if self.settings.entry_mode == "contact":
            self.api.del_contact_way(link.handle)
        else:
            self.api.del_join_way(link.handle)

    def approve_join(self, group_id: str, user_id: str) -> None:
        raise InvalidInput("WeCom customer groups have no join requests to approve (capabilities.join_requests)",
                           zh="企业微信客户群没有入群申请可以通过(capabilities.join_requests)")

    def decline_join(self, group_id: str, user_id: str) -> None:
        raise InvalidInput("WeCom customer groups have no join requests to decline (capabilities.join_requests)",
                           zh="企业微信客户群没有入群申请可以拒绝(capabilities.join_requests)")

    # --- outbound ---
    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        """With a WelcomeCode: the welcome (now or never). Without: a 1:1 mass-send task staff confirm."""
        if context:
            self.api.send_welcome_msg(context, text)
            return SendResult(message_id=f"welcome:{hashlib.sha256(context.encode()).hexdigest()[:16]}")
        result = self.api.add_msg_template(text=text, chat_type="single", external_userids=[user_id])
        if user_id in {str(u) for u in result.get("fail_list", [])}:
            raise Unreachable(f"wecom: {user_id} is no longer a contact of any staff member",
                              zh=f"企业微信:{user_id} 已不是任何员工的客户")
        msgid = str(result["msgid"])
        self._templates[msgid] = {"chat_type": "single", "targets": [user_id],
                                  "senders": list(self.settings.staff_user_ids)}
        return SendResult(message_id=msgid)

    def post_to_group(self, group_id: str, text: str, *, idempotency_key: str | None = None) -> SendResult:
        """A group mass-send task for this one chat; its owner confirms it in the WeCom client."""
        owner = str(self.api.groupchat_get(group_id).get("owner", ""))
        if not owner:
            raise PlatformError(f"wecom: customer group {group_id} has no owner to send through",
                                zh=f"企业微信:客户群 {group_id} 没有群主,无法通过群主发送")
        result = self.api.add_msg_template(text=text, chat_type="group", chat_ids=[group_id], sender=owner)
        msgid = str(result["msgid"])
        self._templates[msgid] = {"chat_type": "group", "targets": [group_id], "senders": [owner]}
        return SendResult(message_id=msgid)

    def template_results(self, msgid: str) -> dict[str, Any]:
        """Where a mass-send task stands: per target, 0 not sent, 1 sent, 2 not a contact, 3 over the cap."""
        task = self._templates.get(msgid)
        senders = task["senders"] if task else list(self.settings.staff_user_ids)
        rows: list[dict[str, Any]] = []
        for sender in senders:
            cursor = ""
            while True:
                page = self.api.get_groupmsg_send_result(msgid, sender, cursor=cursor)
                rows.extend(page.get("send_list", []))
                cursor = str(page.get("next_cursor", "") or "")
                if not cursor:
                    break
        counts = {"pending": 0, "sent": 0, "not_contact": 0, "over_limit": 0}
        names = {0: "pending", 1: "sent", 2: "not_contact", 3: "over_limit"}
        for row in rows:
            counts[names.get(int(row.get("status", 0)), "pending")] += 1
        return {"msgid": msgid, "chat_type": task["chat_type"] if task else None, **counts, "results": rows}

    # --- the group welcome template (入群欢迎语素材) ---
    def save_group_welcome(self, text: str, template_id: str | None = None) -> str:
        """Put `text` into the group welcome template `template_id` (edit), or into a new one when there is
        none or it is gone (deleted in the admin console); returns the template_id now holding it.
        `%NICKNAME%` in the text becomes each newcomer's nickname."""
        if not text.strip():
            raise InvalidInput("a WeCom group welcome template needs a text",
                               zh="企业微信入群欢迎语模板需要填写文字")
        if len(text.encode("utf-8")) > GROUP_WELCOME_MAX_BYTES:
            raise InvalidInput(f"the welcome menu is {len(text.encode('utf-8'))} bytes; a WeCom group welcome "
                               f"template holds at most {GROUP_WELCOME_MAX_BYTES} (text.content): shorten `menu`",
                               zh=f"欢迎菜单有 {len(text.encode('utf-8'))} 字节;企业微信入群欢迎语模板最多 "
                                  f"{GROUP_WELCOME_MAX_BYTES} 字节(text.content):请缩短 `menu`")
        if template_id:
            try:
                self.api.edit_group_welcome_template(template_id, text)
                return template_id
            except WeComApiError as exc:  # deleted by an admin, or made by another app: make our own
                log.warning("WeCom group welcome template %s could not be edited (errcode %s); adding a new one",
                            template_id, exc.errcode)
        return self.api.add_group_welcome_template(text, notify=True)

    # --- set-up checks ---
    def check_group(self, group_id: str) -> list[str]:
        try:
            chat = self.api.groupchat_get(group_id)
        except Unauthorized as exc:
            return [Fix(str(exc), zh=exc.text("zh"))]
        except WeComApiError as exc:
            if exc.errcode in PERMISSION_ERRCODES:
                return [Fix("add the app to 客户联系 → 可调用接口的应用 (or use the 客户联系 secret) so it may "
                            f"read customer groups (errcode {exc.errcode})",
                            zh="请把应用加入「客户联系 → 可调用接口的应用」(或改用客户联系的 Secret),让它能读取"
                               f"客户群(错误码 {exc.errcode})")]
            return [Fix(f"{group_id} is not a customer group of this company, or its owner is outside the app's "
                        f"visible range (errcode {exc.errcode})",
                        zh=f"{group_id} 不是本企业的客户群,或群主不在应用的可见范围内(错误码 {exc.errcode})")]
        fixes: list[str] = []
        owner = str(chat.get("owner", ""))
        if self.settings.staff_user_ids and owner not in self.settings.staff_user_ids:
            fixes.append(Fix(f"the group's owner {owner} is not in staff_user_ids; add them so mass-send tasks "
                             "and welcomes come from a staff member qunflow knows",
                             zh=f"群主 {owner} 不在 staff_user_ids 里;请把他加进去,群发任务和欢迎语才会由 qunflow "
                                "认识的员工发出"))
        if len(chat.get("member_list", [])) >= GROUP_MAX:
            fixes.append(Fix(f"the group is full ({GROUP_MAX} members); point new invites at another group",
                             zh=f"该群已满({GROUP_MAX} 人);请把新的邀请指向另一个群"))
        return fixes

    def connect(self) -> list[str]:
        """Check the corp id and secret (gettoken) and the 客户联系 permission; lines to print."""
        self.api.get_token(force=True)
        notes: list[str] = []
        try:
            follow = set(self.api.get_follow_user_list())
        except PlatformError as exc:
            # gettoken is the credentials check; the staff list only helps choose whom 联系我 codes point at.
            follow = set()
            notes.append(f"Could not list the staff who can take customers ({exc}): check that the secret is the "
                         "客户联系 secret, or that the app is on 客户联系 → 可调用接口的应用.")
            if not self.settings.staff_user_ids and self.settings.entry_mode == "contact":
                self.settings.entry_mode = "group"
                notes.append("Entry mode: group (customer-group join codes), since no staff member was given "
                             "for 联系我 codes: pass --staff USERID for contact mode.")
        missing = [s for s in self.settings.staff_user_ids if follow and s not in follow]
        if not self.settings.staff_user_ids and follow:  # by default every staff member who can take customers
            self.settings.staff_user_ids = sorted(follow)
        if missing:
            raise InvalidInput(f"staff {', '.join(missing)} cannot take customers: turn on 客户联系 for them "
                               "(管理后台 → 客户联系 → 权限配置)",
                               zh=f"员工 {', '.join(missing)} 无法添加客户:请为他们开通客户联系"
                                  "(管理后台 → 客户联系 → 权限配置)")
        if not self.settings.staff_user_ids and self.settings.entry_mode == "contact":
            raise InvalidInput("no staff member can take customers: turn on 客户联系 for at least one "
                               "(管理后台 → 客户联系 → 权限配置), or pass --entry-mode group",
                               zh="没有员工能添加客户:请至少为一名员工开通客户联系(管理后台 → 客户联系 → 权限配置),"
                                  "或传 --entry-mode group")
        url = self.host.public_url.rstrip("/") + CALLBACK_PATH
        return [*notes,
            f"WeCom corp {self.settings.corp_id}: the secret works; {len(follow)} staff can take customers.",
            f"联系我 codes point at: {', '.join(self.settings.staff_user_ids) or '-'}",
            f"Callback URL (客户联系 → API → 接收事件服务器): {url}",
            "  Token and EncodingAESKey: the --callback-token and --aes-key you gave (not printed).",
            f"Entry mode: {self.settings.entry_mode} "
            + ("(联系我 codes; welcomes sent from the add-contact callback)"
               if self.settings.entry_mode == "contact"
               else "(customer-group join codes; needs the 客户群「加入群聊」 permission)"),
            "Permissions: 客户联系 for the app (可调用接口的应用) and for each staff member; "
            "客户群 read access; the owner of each group must be in the app's visible range.",
        ]
