"""Applying playbook files: validate all, show the difference, store a new version of what changed."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

from qunflow.domain.keyword_files import RuleSetSource, parse_rule_sets
from qunflow.domain.playbooks import Playbook, PlaybookErrors, Source, parse_playbooks
from qunflow.errors import InvalidInput, NotFound
from qunflow.store.tables import enrollments, playbook_versions, playbooks
from qunflow.workspace import Workspace

MAX_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class Change:
    key: str
    status: str  # new, changed, unchanged
    version: int  # the version it has (or would have) after applying
    diff: str  # unified diff against the current version ("" when new or unchanged)
    kind: str = "playbook"  # or keyword_rules


def shipped_files() -> list[Path]:
    """The playbooks qunflow ships (S2 warm-up, S4 small event, content calendar)."""
    folder = resources.files("qunflow") / "playbooks"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_sources(paths: list[Path]) -> list[Source]:
    """Parse every file; all problems of all files are reported together, or nothing is returned."""
    return read_files(paths)[0]


def read_files(paths: list[Path]) -> tuple[list[Source], list[RuleSetSource]]:
    """The playbooks and keyword rule sets of every file; any problem in any file refuses them all."""
    problems: list[str] = []
    sources: list[Source] = []
    rule_sets: list[RuleSetSource] = []
    for path in paths:
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise InvalidInput(f"{path}: larger than {MAX_FILE_BYTES:,} bytes")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read ({exc.__class__.__name__}: {exc})")
            continue
        try:
            sources.extend(parse_playbooks(text, str(path)))
        except PlaybookErrors as exc:
            problems.extend(str(p) for p in exc.problems)
        try:
            rule_sets.extend(parse_rule_sets(text, str(path)))
        except PlaybookErrors as exc:  # a YAML syntax error is reported once, by the playbook parser
            problems.extend(str(p) for p in exc.problems if str(p) not in problems)
    keys = [s.playbook.key for s in sources]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"playbook {key!r} is defined in more than one place: "
                        + ", ".join(s.file for s in sources if s.playbook.key == key))
    set_keys = [s.rule_set.key for s in rule_sets]
    for key in sorted({k for k in set_keys if set_keys.count(k) > 1}):
        problems.append(f"keyword rule set {key!r} is defined in more than one place: "
                        + ", ".join(s.file for s in rule_sets if s.rule_set.key == key))
    if problems:
        raise InvalidInput("the playbooks were not applied:\n" + "\n".join(problems))
    return sources, rule_sets


def apply_playbooks(ws: Workspace, paths: list[Path], *, dry_run: bool = False) -> list[Change]:
    """Store a new version of each playbook (and keyword rule set) whose text changed, all in one transaction."""
    from qunflow.services.keyword_rules import apply_rule_sets

    sources, rule_sets = read_files(paths)
    now = ws.clock()
    changes: list[Change] = []
    with ws.engine.begin() as conn:
        for source in sources:
            key = source.playbook.key
            current = conn.execute(select(playbook_versions.c.version, playbook_versions.c.source,
                                          playbook_versions.c.digest)
                                   .join(playbooks, (playbooks.c.key == playbook_versions.c.key)
                                         & (playbooks.c.version == playbook_versions.c.version))
                                   .where(playbooks.c.key == key)).first()
            if current is not None and current.digest == source.digest:
                changes.append(Change(key, "unchanged", current.version, ""))
                continue
            latest = conn.execute(select(func.max(playbook_versions.c.version))
                                  .where(playbook_versions.c.key == key)).scalar() or 0
            version = latest + 1
            diff = "" if current is None else "".join(difflib.unified_diff(
                current.source.splitlines(keepends=True), source.text.splitlines(keepends=True),
                f"{key} v{current.version}", f"{key} v{version} ({source.file})"))
            changes.append(Change(key, "new" if current is None else "changed", version, diff))
            if dry_run:
                continue
            conn.execute(insert(playbook_versions).values(key=key, version=version, source=source.text,
                                                          digest=source.digest, file=source.file, applied_at=now))
            values = {"version": version, "enabled": source.playbook.enabled, "updated_at": now}
            if current is None:
                conn.execute(insert(playbooks).values(key=key, **values))
            else:
                conn.execute(update(playbooks).where(playbooks.c.key == key).values(**values))
        changes.extend(apply_rule_sets(conn, rule_sets, now, dry_run=dry_run))
    return changes


@lru_cache(maxsize=256)
def _parsed(text: str) -> Playbook:
    return parse_playbooks(text)[0].playbook


_versions: dict[tuple[str, str, int], Playbook] = {}


def load_version(conn: Any, key: str, version: int) -> Playbook:
    """A stored version (immutable once applied, so kept in memory per database)."""
    cache_key = (str(conn.engine.url), key, version)
    found = _versions.get(cache_key)
    if found is not None:
        return found
    text = conn.execute(select(playbook_versions.c.source).where(
        (playbook_versions.c.key == key) & (playbook_versions.c.version == version))).scalar()
    if text is None:
        raise NotFound(f"playbook {key} version {version} is not stored")
    if len(_versions) > 1024:
        _versions.clear()
    _versions[cache_key] = playbook = _parsed(text)
    return playbook


def active_playbooks(conn: Any) -> list[tuple[str, int, Playbook]]:
    rows = conn.execute(select(playbooks.c.key, playbooks.c.version).where(playbooks.c.enabled)).all()
    return [(row.key, row.version, load_version(conn, row.key, row.version)) for row in rows]


def playbook_overview(ws: Workspace) -> list[dict[str, Any]]:
    """Each playbook with its versions and how many enrollments wait at each step (console, CLI)."""
    with ws.engine.connect() as conn:
        out = []
        for row in conn.execute(select(playbooks).order_by(playbooks.c.key)).all():
            playbook = load_version(conn, row.key, row.version)
            versions = conn.execute(select(playbook_versions.c.version, playbook_versions.c.applied_at,
                                           playbook_versions.c.file)
                                    .where(playbook_versions.c.key == row.key)
                                    .order_by(playbook_versions.c.version.desc())).all()
            at_step: dict[int, int] = dict(conn.execute(select(enrollments.c.step, func.count())
                                        .where((enrollments.c.playbook_key == row.key)
                                               & (enrollments.c.status == "active"))
                                        .group_by(enrollments.c.step)).all())
            finished: dict[str, int] = dict(conn.execute(select(enrollments.c.status, func.count())
                                         .where(enrollments.c.playbook_key == row.key)
                                         .group_by(enrollments.c.status)).all())
            steps = [{"index": i, "id": step.id or "", "action": step.action, "active": int(at_step.get(i, 0))}
                     for i, step in enumerate(playbook.steps)]
            out.append({"key": row.key, "title": playbook.title, "version": row.version, "enabled": row.enabled,
                        "trigger": playbook.trigger.on, "versions": [dict(v._mapping) for v in versions],
                        "steps": steps, "statuses": {k: int(v) for k, v in finished.items()}})
    return out
