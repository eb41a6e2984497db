"""Applying playbook files: validate all, show the difference, store a new version of what changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select

from qunflow.domain.experiments import ExperimentSource, parse_experiments
from qunflow.domain.keyword_files import RuleSetSource, parse_rule_sets
from qunflow.domain.playbooks import Playbook, PlaybookErrors, Source, parse_playbooks
from qunflow.domain.rewards import ProgramSource, parse_programs
from qunflow.domain.tier_rules import TierRuleSource, parse_tier_rules
from qunflow.domain.welcome import KEY as WELCOME_KEY
from qunflow.domain.welcome import WelcomeSource, parse_welcomes
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.versions import Change, store_version
from qunflow.store.tables import enrollments, playbook_versions, playbooks
from qunflow.workspace import Workspace

MAX_FILE_BYTES = 1_000_000
T = TypeVar("T")


def shipped_files() -> list[Path]:
    """The playbooks qunflow ships (S1 welcome, S2 warm-up, S4 small event, content calendar, keyword rules,
    S3 referral rewards)."""
    folder = resources.files("qunflow") / "playbooks"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_sources(paths: list[Path]) -> list[Source]:
    """Parse every file; all problems of all files are reported together, or nothing is returned."""
    return read_files(paths).playbooks


@dataclass
class Documents:
    """What a set of files holds, by kind."""

    playbooks: list[Source] = field(default_factory=list)
    rule_sets: list[RuleSetSource] = field(default_factory=list)
    programs: list[ProgramSource] = field(default_factory=list)
    welcomes: list[WelcomeSource] = field(default_factory=list)
    experiments: list[ExperimentSource] = field(default_factory=list)
    tier_rules: list[TierRuleSource] = field(default_factory=list)


def _collect(parse: Callable[[str, str], list[T]], text: str, path: Path, problems: list[str]) -> list[T]:
    try:
        return parse(text, str(path))
    except PlaybookErrors as exc:  # a YAML syntax error is reported once, by the first parser
        problems.extend(str(p) for p in exc.problems if str(p) not in problems)
        return []


def _defined_twice(what: str, keys_files: list[tuple[str, str]]) -> list[str]:
    keys = [k for k, _ in keys_files]
    return [f"{what} {key!r} is defined in more than one place: " + ", ".join(f for k, f in keys_files if k == key)
            for key in sorted({k for k in keys if keys.count(k) > 1})]


def read_files(paths: list[Path]) -> Documents:
    """The playbooks, keyword rule sets, reward programs and welcome of every file; any problem refuses them all."""
    problems: list[str] = []
    found = Documents()
    for path in paths:
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise InvalidInput(f"{path}: larger than {MAX_FILE_BYTES:,} bytes",
                                   zh=f"{path}:文件超过 {MAX_FILE_BYTES:,} 字节")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read ({exc.__class__.__name__}: {exc})")
            continue
        found.playbooks += _collect(parse_playbooks, text, path, problems)
        found.rule_sets += _collect(parse_rule_sets, text, path, problems)
        found.programs += _collect(parse_programs, text, path, problems)
        found.welcomes += _collect(parse_welcomes, text, path, problems)
        found.experiments += _collect(parse_experiments, text, path, problems)
        found.tier_rules += _collect(parse_tier_rules, text, path, problems)
    problems += _defined_twice("playbook", [(s.playbook.key, s.file) for s in found.playbooks])
    problems += _defined_twice("keyword rule set", [(s.rule_set.key, s.file) for s in found.rule_sets])
    problems += _defined_twice("reward program", [(s.program.key, s.file) for s in found.programs])
    problems += _defined_twice("experiment", [(s.experiment.key, s.file) for s in found.experiments])
    problems += _defined_twice("tier rule set", [(s.rule_set.key, s.file) for s in found.tier_rules])
    problems += _defined_twice("the welcome (kind: welcome)", [(WELCOME_KEY, s.file) for s in found.welcomes])
    problems += [f"{s.file}: key: {WELCOME_KEY!r} is the welcome's name (kind: welcome); give the playbook another"
                 for s in found.playbooks if s.playbook.key == WELCOME_KEY]
    if problems:
        raise InvalidInput("the playbooks were not applied:\n" + "\n".join(problems),
                           zh="剧本未应用:\n" + "\n".join(problems))
    return found


def apply_playbooks(ws: Workspace, paths: list[Path], *, dry_run: bool = False) -> list[Change]:
    """Store a new version of each playbook, keyword rule set and reward program whose text changed,
    all in one transaction."""
    from qunflow.services.experiments import apply_experiments
    from qunflow.services.keyword_rules import apply_rule_sets
    from qunflow.services.rewards import apply_programs
    from qunflow.services.tier_moves import apply_tier_rules
    from qunflow.services.welcome_docs import apply_welcomes

    found = read_files(paths)
    now = ws.clock()
    changes: list[Change] = []
    with ws.engine.begin() as conn:
        if found.experiments:  # what an experiment varies must exist (applied now or in force)
            from qunflow.services.experiments import reference_problems

            problems = reference_problems(conn, found.experiments,
                                          {s.playbook.key: s.playbook for s in found.playbooks},
                                          {s.program.key: s.program for s in found.programs})
            if problems:
                raise InvalidInput("the playbooks were not applied:\n" + "\n".join(problems),
                                   zh="剧本未应用:\n" + "\n".join(problems))
        for source in found.playbooks:
            changes.append(store_version(conn, playbooks, playbook_versions, kind="playbook",
                                         key=source.playbook.key, text=source.text, digest=source.digest,
                                         file=source.file, enabled=source.playbook.enabled, now=now,
                                         dry_run=dry_run))
        changes.extend(apply_rule_sets(conn, found.rule_sets, now, dry_run=dry_run))
        changes.extend(apply_programs(conn, found.programs, now, dry_run=dry_run))
        changes.extend(apply_welcomes(conn, found.welcomes, now, dry_run=dry_run))
        changes.extend(apply_experiments(conn, found.experiments, now, dry_run=dry_run))
        changes.extend(apply_tier_rules(conn, found.tier_rules, now, dry_run=dry_run))
    if not dry_run and any(c.kind == "welcome" and c.status != "unchanged" for c in changes):
        from qunflow.services.group_welcome import sync_quietly

        sync_quietly(ws)  # the platform-side group welcome (WeCom 入群欢迎语素材) follows the new menu
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
        raise NotFound(f"playbook {key} version {version} is not stored", zh=f"没有保存剧本 {key} 的第 {version} 版")
    if len(_versions) > 1024:
        _versions.clear()
    _versions[cache_key] = playbook = _parsed(text)
    return playbook


def active_playbooks(conn: Any) -> list[tuple[str, int, Playbook]]:
    rows = conn.execute(select(playbooks.c.key, playbooks.c.version)
                        .where(playbooks.c.enabled & (playbooks.c.key != WELCOME_KEY))).all()
    return [(row.key, row.version, load_version(conn, row.key, row.version)) for row in rows]


def playbook_overview(ws: Workspace) -> list[dict[str, Any]]:
    """Each playbook with its versions and how many enrollments wait at each step (console, CLI)."""
    with ws.engine.connect() as conn:
        out = []
        for row in conn.execute(select(playbooks).where(playbooks.c.key != WELCOME_KEY)  # services.welcome_docs
                                .order_by(playbooks.c.key)).all():
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
