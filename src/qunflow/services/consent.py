"""Consent at run time (P8): the marketing consent granted or withdrawn by a chat word, a personal link or
the console/API, with a confirmation to the member; the links and texts that go into DMs.

The outbox refuses a marketing DM without the marketing consent (engine/outbox.py); this module is how
members give and take it back. Rules and words: domain/consent.py; records: store/consents.py.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import Connection, select

from qunflow.connectors.base import MessagePosted
from qunflow.domain.consent import MARKETING, is_command
from qunflow.domain.welcome import pick_language
from qunflow.engine import outbox
from qunflow.errors import NotFound
from qunflow.i18n import t
from qunflow.services.join import member_of_user
from qunflow.services.privacy import member_link_token
from qunflow.store.consents import consents_in_force, marketing_decided, record_consent
from qunflow.store.tables import members
from qunflow.workspace import Workspace


def words(ws: Workspace, lang: str) -> dict[str, str]:
    """The stop and start words texts name: the first configured one (in English the first in Latin letters)."""
    def pick(choices: list[str]) -> str:
        if lang == "en":
            return next((w for w in choices if w.isascii()), choices[0])
        return choices[0]
    return {"stop": pick(ws.settings.unsubscribe_keywords), "start": pick(ws.settings.subscribe_keywords)}


def personal_link(ws: Workspace, member_id: str, page: str) -> str:
    """A member's personal page: /m/<token>/unsubscribe or /m/<token>/consent."""
    return f"{ws.settings.public_url.rstrip('/')}/m/{member_link_token(ws, member_id)}/{page}"


def marketing_footer(ws: Workspace, member_id: str, lang: str) -> str:
    """The line every marketing DM ends with: how to stop them."""
    return t("marketing_footer", lang, link=personal_link(ws, member_id, "unsubscribe"), **words(ws, lang))


def welcome_consent_ask(ws: Workspace, member_id: str, lang: str) -> str:
    return t("welcome_consent_ask", lang, link=personal_link(ws, member_id, "consent"), **words(ws, lang))


def asked_before(conn: Connection, member_id: str) -> bool:
    """Whether the member decided on marketing already (at the gate, by a word or a link)."""
    return marketing_decided(conn, member_id)


def set_marketing(ws: Workspace, member_id: str, granted: bool, source: str) -> dict[str, bool]:
    """Grant or withdraw the marketing consent; returns the consents in force. NotFound for an unknown member."""
    with ws.engine.begin() as conn:
        if conn.execute(select(members.c.id).where(members.c.id == member_id)).first() is None:
            raise NotFound(f"no member {member_id!r}", zh=f"没有成员 {member_id!r}")
        record_consent(conn, member_id, MARKETING, granted, source, ws.clock())
        return consents_in_force(conn, member_id)


def on_message(ws: Workspace, item: Any) -> bool:
    """An inbound handler: a message that is just a stop (or start) word changes the sender's marketing
    consent and gets a private confirmation. True when it was one."""
    assert isinstance(item, MessagePosted)
    if is_command(item.text, ws.settings.unsubscribe_keywords):
        granted = False
    elif is_command(item.text, ws.settings.subscribe_keywords):
        granted = True
    else:
        return False
    with ws.engine.begin() as conn:
        member_id = member_of_user(conn, item.platform, item.user_id)
        if member_id is None:
            return False
        record_consent(conn, member_id, MARKETING, granted, "keyword" if not granted else "welcome_reply",
                       item.at.replace(tzinfo=UTC).replace(tzinfo=None))
        locale = conn.execute(select(members.c.locale).where(members.c.id == member_id)).scalar()
    lang = pick_language(locale)
    text = t("chat_subscribed" if granted else "chat_unsubscribed", lang, **words(ws, lang))
    message = item.message_id or f"{item.at:%Y%m%d%H%M%S%f}"
    outbox.send(ws, outbox.Message(key=f"consent:{item.platform}:{item.user_id}:{message}", kind="consent_reply",
                                   platform=item.platform, target=item.user_id, text=text, private=True,
                                   member_id=member_id))
    return True
