"""Operator-edited page texts (issue 12): the group rules (群规) and the landing copy, in zh and en, for the
whole workspace or one entry point. An entry point's own text beats the workspace's, which beats the
built-in one (i18n.py). Plain text: pages escape it and keep its line breaks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update

from qunflow.errors import InvalidInput, NotFound
from qunflow.i18n import t
from qunflow.store.tables import entry_points, page_texts
from qunflow.workspace import Workspace

# key -> the built-in text it replaces (i18n.py)
KEYS = {"rules": "rules_body", "landing_title": "join_title", "landing_intro": "join_intro"}
LANGS = ("zh", "en")
MAX_CHARS = {"rules": 4000, "landing_title": 80, "landing_intro": 1000}


def _check(key: str, lang: str, scope: str) -> None:
    if key not in KEYS:
        raise InvalidInput(f"text {key!r} is not one of: {', '.join(KEYS)}",
                           zh=f"文案 {key!r} 不在可选范围内:{', '.join(KEYS)}")
    if lang not in LANGS:
        raise InvalidInput(f"lang must be zh or en, got {lang!r}", zh=f"语言须为 zh 或 en,当前为 {lang!r}")
    if len(scope) > 32:
        raise InvalidInput("an entry point code has at most 32 characters", zh="入口代码最多 32 个字符")


def set_text(ws: Workspace, key: str, lang: str, body: str | None, entry: str | None = None) -> None:
    """Store (or, with an empty body, remove) a text for the workspace or one entry point."""
    scope = entry or ""
    _check(key, lang, scope)
    body = (body or "").strip()
    if len(body) > MAX_CHARS[key]:
        raise InvalidInput(f"{key} has at most {MAX_CHARS[key]} characters (this one has {len(body)})",
                           zh=f"{key} 最多 {MAX_CHARS[key]} 个字符(当前为 {len(body)} 个)")
    where = (page_texts.c.scope == scope) & (page_texts.c.key == key) & (page_texts.c.lang == lang)
    with ws.engine.begin() as conn:
        if scope and conn.execute(select(entry_points.c.id).where(entry_points.c.code == scope)).first() is None:
            raise NotFound(f"no entry point {scope!r}", zh=f"找不到入口 {scope!r}")
        if not body:
            conn.execute(delete(page_texts).where(where))
        elif conn.execute(select(page_texts.c.id).where(where)).first() is None:
            conn.execute(insert(page_texts).values(scope=scope, key=key, lang=lang, body=body,
                                                   updated_at=ws.clock()))
        else:
            conn.execute(update(page_texts).where(where).values(body=body, updated_at=ws.clock()))


def texts_for(ws: Workspace, lang: str, entry: str | None = None) -> dict[str, str]:
    """Every text a page shows, in `lang`: the entry point's, else the workspace's, else the built-in one."""
    scopes = ["", entry] if entry else [""]
    with ws.engine.connect() as conn:
        rows = conn.execute(select(page_texts.c.scope, page_texts.c.key, page_texts.c.body)
                            .where(page_texts.c.scope.in_(scopes), page_texts.c.lang == lang)).all()
    found = {key: t(builtin, lang) for key, builtin in KEYS.items()}
    for row in sorted(rows, key=lambda r: r.scope != ""):  # the entry point's come last and win
        found[row.key] = row.body
    return found


def list_texts(ws: Workspace, entry: str | None = None) -> list[dict[str, Any]]:
    """The stored texts (all, or one entry point's and the workspace's)."""
    query = select(page_texts).order_by(page_texts.c.scope, page_texts.c.key, page_texts.c.lang)
    if entry is not None:
        query = query.where(page_texts.c.scope.in_(["", entry]))
    with ws.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
