"""The applied S1 welcome: stored as versions in the playbook tables under the key `s1_welcome`, read in the
join path through a per-process cache, listed with its versions, previewed.

The welcome's head row sits in `playbooks` beside the playbooks (same columns, same versioning), so
the automation engine and the playbook overview leave that key out (services.playbooks). Playbook keys
cannot take it: `qunflow apply` refuses a playbook named `s1_welcome`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection, select

from qunflow.domain.templates import preview_template
from qunflow.domain.welcome import DEFAULT, DM_VARIABLES, KEY, Welcome, WelcomeSource, parse_welcomes
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.versions import Change, store_version
from qunflow.store.memo import remembered
from qunflow.store.plain import read_first
from qunflow.store.tables import playbook_versions, playbooks
from qunflow.workspace import Workspace

LANGS = ("zh", "en")


def apply_welcomes(conn: Connection, sources: list[WelcomeSource], now: Any, *, dry_run: bool = False
                   ) -> list[Change]:
    """Store a new version of the welcome if its text changed (called from `qunflow apply`)."""
    return [store_version(conn, playbooks, playbook_versions, kind="welcome", key=KEY, text=s.text, digest=s.digest,
                          file=s.file, enabled=True, now=now, dry_run=dry_run) for s in sources]


_IN_FORCE = (select(playbooks.c.version, playbook_versions.c.digest)
             .join(playbook_versions, (playbook_versions.c.key == playbooks.c.key)
                   & (playbook_versions.c.version == playbooks.c.version))
             .where(playbooks.c.key == KEY))  # built once: read on every welcome
_by_digest: dict[str, Welcome] = {}  # stored versions parsed in this process; a digest names its text
_last: tuple[str | None, Welcome] = (None, DEFAULT)  # what active_welcome last found in force (its digest)
# What an inbound update's first read found in force (store/memo.py): a row of _IN_FORCE, None for the default.
IN_FORCE_KEY = ("welcome_in_force",)


class InForce(NamedTuple):
    """The welcome in force as _IN_FORCE reads it."""

    version: int
    digest: str


def active_welcome(conn: Connection) -> tuple[int | None, Welcome]:
    """(version, welcome) in force: the applied one, or (None, the built-in default).

    One indexed lookup per call, none where the update's first read brought it (services/join_request_read.py);
    the stored text is read and parsed only when its digest is new to this process, so the join path pays well
    under a millisecond for it."""
    global _last
    v = playbook_versions.c
    row = remembered(IN_FORCE_KEY, lambda: read_first(conn, _IN_FORCE, {}))
    if row is None:
        _last = (None, DEFAULT)
        return None, DEFAULT
    welcome = _by_digest.get(row.digest)
    if welcome is None:
        text = conn.execute(select(v.source).where((v.key == KEY) & (v.version == row.version))).scalar_one()
        welcome = parse_welcomes(text, KEY)[0].welcome
        if len(_by_digest) >= 64:
            _by_digest.clear()
        _by_digest[row.digest] = welcome
    _last = (row.digest, welcome)
    return row.version, welcome


def last_in_force() -> tuple[str | None, Welcome]:
    """(digest, welcome) that active_welcome last found in force in this process (None: the default), without
    a read: a caller that must be sure compares the digest with `IN_FORCE_DIGEST` read in its own statement."""
    return _last


# The digest and version of the welcome in force (NULL: the default), for a statement that reads them along with
# other things.
IN_FORCE_DIGEST = _IN_FORCE.with_only_columns(playbook_versions.c.digest).scalar_subquery()
IN_FORCE_VERSION = _IN_FORCE.with_only_columns(playbooks.c.version).scalar_subquery()


def sample_values(ws: Workspace, lang: str) -> dict[str, str]:
    """Made-up values a preview fills in, as a member joining a newbie group would get them."""
    base = ws.settings.public_url.rstrip("/")
    zh = lang == "zh"
    return {"name": "小明" if zh else "Alex", "names": "小明, 小红" if zh else "Alex, Sam",
            "profile_link": f"{base}/m/sample/task/profile", "coupon_link": f"{base}/m/sample/task/claim_coupon",
            "rules_link": f"{base}/rules", "group": "newbie-1", "tier": "newbie", "entry_point": "ads-1"}


def preview(ws: Workspace, template: str, lang: str) -> str:
    """One text of the welcome in force (dm, menu, dm:<variant>), rendered with sample values in `lang`."""
    if lang not in LANGS:
        raise InvalidInput(f"lang must be zh or en, got {lang!r}", zh=f"语言须为 zh 或 en,当前为 {lang!r}")
    with ws.engine.connect() as conn:
        _, welcome = active_welcome(conn)
    texts = welcome.templates()
    if template not in texts:
        raise NotFound(f"the welcome has no text {template!r} (texts: {', '.join(texts)})",
                       zh=f"欢迎语中没有文案 {template!r}(现有文案:{', '.join(texts)})")
    return preview_template(getattr(texts[template], lang), sample_values(ws, lang), lang)


def welcome_overview(ws: Workspace, lang: str = "en") -> dict[str, Any]:
    """The welcome in force with its versions, tasks, variants and previews (console, CLI)."""
    h, v = playbooks.c, playbook_versions.c
    with ws.engine.connect() as conn:
        version, welcome = active_welcome(conn)
        versions = [dict(r._mapping) for r in conn.execute(
            select(v.version, v.applied_at, v.file).where(v.key == KEY).order_by(v.version.desc()))]
        enabled = conn.execute(select(h.enabled).where(h.key == KEY)).scalar()
    values = sample_values(ws, lang)
    return {
        "key": KEY, "version": version, "built_in": version is None, "enabled": enabled is not False,
        "title_text": getattr(welcome.title, lang), "title": {"zh": welcome.title.zh, "en": welcome.title.en},
        "menu_batch_seconds": welcome.menu_batch_seconds, "versions": versions,
        "tasks": [{"key": t.key, "title": getattr(t.title, lang), "due_hours": t.due_hours}
                  for t in welcome.day1_tasks],
        "variants": [{"id": x.id, "tiers": list(x.tiers), "entry_points": list(x.entry_points)}
                     for x in welcome.variants],
        "templates": [{"name": name, "preview": preview_template(getattr(text, lang), values, lang)}
                      for name, text in welcome.templates().items()],
        "variables": sorted(DM_VARIABLES),
    }
