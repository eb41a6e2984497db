"""Pure parsing of WeCom callbacks: the outer envelope and the decrypted event XML.

Self-built apps receive 客户联系 events as `<Event>change_external_contact</Event>` or
`change_external_chat` with a `<ChangeType>` (document/path/92130; the third-party form on 92277 uses
InfoType instead of Event and is read the same way). XML is parsed with defusedxml: callbacks are
untrusted input. Events qunflow does not act on come back as `WeComEvent.ignored`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from qunflow.errors import InvalidInput

CONTACT_EVENT = "change_external_contact"
CHAT_EVENT = "change_external_chat"
HANDLED = {
    (CONTACT_EVENT, "add_external_contact"),
    (CONTACT_EVENT, "del_external_contact"),
    (CONTACT_EVENT, "del_follow_user"),
    (CHAT_EVENT, "create"),
    (CHAT_EVENT, "update"),
    (CHAT_EVENT, "dismiss"),
}


@dataclass(frozen=True)
class WeComEvent:
    """The fields qunflow reads from one callback; absent ones are None (or empty)."""

    event: str
    change_type: str
    create_time: datetime  # naive UTC
    user_id: str | None = None  # the staff member (UserID)
    external_user_id: str | None = None
    state: str | None = None
    welcome_code: str | None = None
    chat_id: str | None = None
    update_detail: str | None = None  # add_member, del_member, change_owner, change_name ...
    join_scene: int | None = None
    quit_scene: int | None = None
    mem_change_cnt: int | None = None
    mem_change_list: tuple[str, ...] | None = None  # None: the callback did not carry the list
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ignored(self) -> bool:
        return (self.event, self.change_type) not in HANDLED


_WHAT_ZH = {"request body": "请求体", "decrypted event": "解密后的事件"}


def _parse(xml: bytes | str, what: str) -> Element:
    try:
        root = ElementTree.fromstring(xml)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise InvalidInput(f"wecom callback: the {what} is not well-formed XML ({type(exc).__name__})",
                           zh=f"企业微信回调:{_WHAT_ZH.get(what, what)}不是格式正确的 XML"
                              f"({type(exc).__name__})") from exc
    if root is None:
        raise InvalidInput(f"wecom callback: the {what} is empty",
                           zh=f"企业微信回调:{_WHAT_ZH.get(what, what)}为空")
    return root


def envelope_encrypt(body: bytes) -> str:
    """The ciphertext in the POSTed envelope `<xml><ToUserName/><Encrypt/><AgentID/></xml>`."""
    root = _parse(body, "request body")
    encrypt = (root.findtext("Encrypt") or "").strip()
    if not encrypt:
        raise InvalidInput("wecom callback: the request body has no <Encrypt> element",
                           zh="企业微信回调:请求体里没有 <Encrypt> 元素")
    return encrypt


def _text(root: Element, tag: str) -> str | None:
    node = root.find(tag)
    if node is None or node.text is None:
        return None
    return node.text.strip() or None


def _int(root: Element, tag: str) -> int | None:
    value = _text(root, tag)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidInput(f"wecom callback: <{tag}> is not a number",
                           zh=f"企业微信回调:<{tag}> 不是数字") from exc


def _member_list(root: Element) -> tuple[str, ...] | None:
    """MemChangeList: <Item> children (current form) or one comma-separated text (older form)."""
    node = root.find("MemChangeList")
    if node is None:
        return None
    items = [(item.text or "").strip() for item in node.findall("Item")]
    if not items and node.text:
        items = node.text.split(",")
    return tuple(i.strip() for i in items if i.strip())


def parse_event(xml: bytes | str) -> WeComEvent:
    """The decrypted event XML as a WeComEvent; malformed input raises InvalidInput."""
    root = _parse(xml, "decrypted event")
    event = _text(root, "Event") or _text(root, "InfoType") or ""
    change_type = _text(root, "ChangeType") or ""
    stamp = _int(root, "CreateTime") or _int(root, "TimeStamp")
    if stamp is None:
        raise InvalidInput("wecom callback: the event has no CreateTime",
                           zh="企业微信回调:事件缺少 CreateTime")
    try:
        created = datetime.fromtimestamp(stamp, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidInput("wecom callback: CreateTime is out of range",
                           zh="企业微信回调:CreateTime 超出范围") from exc
    known = {"Event", "InfoType", "ChangeType", "CreateTime", "TimeStamp", "UserID", "ExternalUserID",
             "State", "WelcomeCode", "ChatId", "UpdateDetail", "JoinScene", "QuitScene", "MemChangeCnt",
             "MemChangeList"}
    extra = {child.tag: (child.text or "").strip() for child in root if child.tag not in known}
    return WeComEvent(
        event=event, change_type=change_type, create_time=created,
        user_id=_text(root, "UserID"), external_user_id=_text(root, "ExternalUserID"),
        state=_text(root, "State"), welcome_code=_text(root, "WelcomeCode"), chat_id=_text(root, "ChatId"),
        update_detail=_text(root, "UpdateDetail"), join_scene=_int(root, "JoinScene"),
        quit_scene=_int(root, "QuitScene"), mem_change_cnt=_int(root, "MemChangeCnt"),
        mem_change_list=_member_list(root), extra=extra,
    )
