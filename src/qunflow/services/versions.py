"""Versioned documents (playbooks, keyword rule sets, reward programs): a new version per changed text."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, update


@dataclass(frozen=True)
class Change:
    key: str
    status: str  # new, changed, unchanged
    version: int  # the version it has (or would have) after applying
    diff: str  # unified diff against the current version ("" when new or unchanged)
    kind: str = "playbook"  # or keyword_rules, rewards


def store_version(conn: Connection, heads: Table, versions: Table, *, kind: str, key: str, text: str, digest: str,
                  file: str, enabled: bool, now: datetime, dry_run: bool, extra: dict[str, Any] | None = None
                  ) -> Change:
    """Compare `text` with the key's current version; unless unchanged (or a dry run), store it as the next
    version and make it current. `heads` has key/version/enabled/updated_at, `versions` one row per version."""
    v, h = versions.c, heads.c
    current = conn.execute(select(v.version, v.source, v.digest)
                           .join(heads, (h.key == v.key) & (h.version == v.version)).where(h.key == key)).first()
    if current is not None and current.digest == digest:
        return Change(key, "unchanged", current.version, "", kind)
    version = (conn.execute(select(func.max(v.version)).where(v.key == key)).scalar() or 0) + 1
    diff = "" if current is None else "".join(difflib.unified_diff(
        current.source.splitlines(keepends=True), text.splitlines(keepends=True),
        f"{key} v{current.version}", f"{key} v{version} ({file})"))
    if not dry_run:
        conn.execute(insert(versions).values(key=key, version=version, source=text, digest=digest, file=file,
                                             applied_at=now, **(extra or {})))
        values = {"version": version, "enabled": enabled, "updated_at": now}
        if current is None:
            conn.execute(insert(heads).values(key=key, **values))
        else:
            conn.execute(update(heads).where(h.key == key).values(**values))
    return Change(key, "new" if current is None else "changed", version, diff, kind)
