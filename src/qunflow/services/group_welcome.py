"""The group welcome kept on the platform (WeCom 入群欢迎语素材): the welcome menu of the welcome in force.

Where a bot cannot post in the group at once (WeCom: a group message is a task staff confirm), the platform
greets newcomers itself with a template staff bind to their groups. qunflow keeps one template per
language (a template holds one text, and a group is bound to one template), made or edited when a group of
that platform is added or a welcome document is applied, and skips the call when the text is unchanged.
Connectors that offer this have `save_group_welcome(text, template_id) -> template_id`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update

from qunflow.domain.templates import render_template
from qunflow.errors import QunflowError
from qunflow.services.welcome_docs import LANGS, active_welcome
from qunflow.store.plain import insert_if_new
from qunflow.store.tables import groups, welcome_templates
from qunflow.workspace import Workspace

log = logging.getLogger("qunflow")

# WeCom replaces %NICKNAME% with each newcomer's nickname. A template serves every group it is bound to, so
# the menu's {{ group }} and {{ tier }} have no value there and are left empty.
NICKNAME = "%NICKNAME%"


def menu_text(ws: Workspace, lang: str) -> str:
    """The welcome menu in force, in `lang`, as a template the platform fills in per newcomer."""
    with ws.engine.connect() as conn:
        menu = active_welcome(conn)[1].menu
    return render_template({"zh": menu.zh, "en": menu.en}, {
        "names": NICKNAME, "rules_link": f"{ws.settings.public_url.rstrip('/')}/rules", "group": "", "tier": ""},
        lang)


def _saver(ws: Workspace, platform: str) -> Any:
    try:
        return getattr(ws.connector(platform), "save_group_welcome", None)
    except (QunflowError, KeyError):
        return None


def sync_group_welcome(ws: Workspace, platforms: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """Bring each platform's group welcome templates up to the welcome menu in force; platforms with no group
    are left alone. Returns {platform: {lang: template_id}} of the templates that were made or changed."""
    changed: dict[str, dict[str, str]] = {}
    for platform in platforms if platforms is not None else ws.connected_platforms():
        save = _saver(ws, platform)
        if save is None:
            continue
        with ws.engine.connect() as conn:
            if conn.execute(select(groups.c.id).where(groups.c.platform == platform).limit(1)).first() is None:
                continue
            stored = {r.lang: r for r in conn.execute(select(welcome_templates).where(
                welcome_templates.c.platform == platform))}
        for lang in LANGS:
            text = menu_text(ws, lang)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            row = stored.get(lang)
            if row is not None and row.digest == digest:
                continue
            template_id = str(save(text, row.template_id if row is not None else None))
            values = {"template_id": template_id, "digest": digest, "updated_at": ws.clock()}
            with ws.engine.begin() as conn:
                if not insert_if_new(conn, welcome_templates, {"platform": platform, "lang": lang, **values}):
                    conn.execute(update(welcome_templates).where(welcome_templates.c.platform == platform,
                                                                 welcome_templates.c.lang == lang).values(**values))
            changed.setdefault(platform, {})[lang] = template_id
    return changed


def sync_quietly(ws: Workspace, platforms: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """`sync_group_welcome` after a group add or an apply, which stand without it: a failure is logged (the
    next add or apply tries again), not raised."""
    try:
        return sync_group_welcome(ws, platforms)
    except QunflowError as exc:
        log.warning("the platform's group welcome template was not updated: %s", exc)
        return {}


def template_ids(ws: Workspace, platform: str) -> dict[str, str]:
    """{lang: template_id} of a platform's group welcome templates (for docs, the CLI and checks)."""
    with ws.engine.connect() as conn:
        return {r.lang: r.template_id for r in conn.execute(select(welcome_templates).where(
            welcome_templates.c.platform == platform))}
