"""Gate documents (`kind: gate`, P2): applied, versioned and diffed like playbooks; the shipped `seed` gate.

The `gates` row is the gate in force (its parsed definition, read by the join path through
services/catalog.py `entry_info`); `gate_versions` keeps every applied text. A gate stored before gates were
documents has no version: applying a document to its key makes version 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from qunflow.domain.entry import TIERS
from qunflow.domain.gate import Gate, gate_from_json, gate_to_json
from qunflow.domain.gate_files import GateSource, gate_yaml, parse_gates
from qunflow.domain.playbooks import PlaybookErrors
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.versions import Change, store_version
from qunflow.store.tables import entry_points, gate_versions, gates, groups
from qunflow.workspace import Workspace

MAX_FILE_BYTES = 200_000
SEED_KEY = "seed"


def seed_file() -> Path:
    """The shipped seed gate document (the same gate as domain/gate.py SEED_GATE_JSON)."""
    return Path(str(resources.files("qunflow") / "gates" / "seed.yaml"))


def read_gate_text(text: str, file: str) -> list[GateSource]:
    """Parse a gate document; every problem in one InvalidInput (`file:line: field: message` lines)."""
    try:
        return parse_gates(text, file)
    except PlaybookErrors as exc:
        problems = "\n".join(str(p) for p in exc.problems)
        raise InvalidInput("the gate was not applied:\n" + problems, zh="入群问卷未应用:\n" + problems) from None


def read_gate_file(path: Path) -> list[GateSource]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInput(f"{path}: larger than {MAX_FILE_BYTES:,} bytes",
                               zh=f"{path}:文件超过 {MAX_FILE_BYTES:,} 字节")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.__class__.__name__}: {exc})",
                           zh=f"{path}:无法读取({exc.__class__.__name__}: {exc})") from None
    return read_gate_text(text, str(path))


def _store(conn: Connection, source: GateSource, now: Any, dry_run: bool) -> Change:
    """Compare with the version in force and, unless unchanged or a dry run, store the next version."""
    key = source.gate.key
    change = store_version(conn, gates, gate_versions, kind="gate", key=key, text=source.text,
                           digest=source.digest, file=source.file, enabled=True, now=now, dry_run=True)
    if dry_run or change.status == "unchanged":
        return change
    conn.execute(insert(gate_versions).values(key=key, version=change.version, source=source.text,
                                              digest=source.digest, file=source.file, applied_at=now))
    values = {"definition": gate_to_json(source.gate), "title": source.title, "version": change.version,
              "updated_at": now, "name": source.title.get("en") or key}
    if conn.execute(select(gates.c.id).where(gates.c.key == key)).first() is None:
        conn.execute(insert(gates).values(key=key, created_at=now, **values))
    else:
        conn.execute(update(gates).where(gates.c.key == key).values(**values))
    return change


def apply_text(ws: Workspace, text: str, file: str, *, dry_run: bool = False) -> list[Change]:
    """Validate gate documents and store a new version of each one whose text changed (all or nothing)."""
    sources = read_gate_text(text, file)
    now = ws.clock()
    with ws.engine.begin() as conn:
        return [_store(conn, s, now, dry_run) for s in sources]


def apply_gates(ws: Workspace, paths: list[Path], *, dry_run: bool = False) -> list[Change]:
    """`qunflow gate apply FILE...`: every file checked first; nothing is stored when any has a problem."""
    sources: list[GateSource] = []
    problems: list[str] = []
    for path in paths:
        try:
            sources += read_gate_file(path)
        except InvalidInput as exc:
            problems.append(str(exc).removeprefix("the gate was not applied:\n"))
    keys = [s.gate.key for s in sources]
    problems += [f"gate {k!r} is defined in more than one file" for i, k in enumerate(keys) if k in keys[:i]]
    if problems:
        raise InvalidInput("the gates were not applied:\n" + "\n".join(problems),
                           zh="入群问卷未应用:\n" + "\n".join(problems))
    now = ws.clock()
    with ws.engine.begin() as conn:
        return [_store(conn, s, now, dry_run) for s in sources]


def ensure_seed(ws: Workspace) -> None:
    """Store the shipped seed gate unless a gate named `seed` exists already (the first `--gate seed`)."""
    with ws.engine.connect() as conn:
        if conn.execute(select(gates.c.id).where(gates.c.key == SEED_KEY)).first() is not None:
            return
    apply_gates(ws, [seed_file()])


def diff_gate(ws: Workspace, key: str, path: Path) -> Change:
    """What applying `path` would change for gate `key` (nothing is stored)."""
    sources = [s for s in read_gate_file(path) if s.gate.key == key]
    if not sources:
        raise InvalidInput(f"{path} defines no gate with key {key!r}", zh=f"{path} 中没有标识为 {key!r} 的入群问卷")
    with ws.engine.connect() as conn:
        return _store(conn, sources[0], ws.clock(), dry_run=True)


@dataclass(frozen=True)
class GateView:
    key: str
    title: dict[str, str]
    version: int | None
    gate: Gate
    text: str  # the applied document, or one written from the stored definition (a gate from before documents)
    versions: list[dict[str, Any]]
    entry_points: list[str]


def gate_view(ws: Workspace, key: str, version: int | None = None) -> GateView:
    """A gate with its document (the one in force, or `version`), its versions and the entry points using it."""
    with ws.engine.connect() as conn:
        row = conn.execute(select(gates).where(gates.c.key == key)).first()
        if row is None:
            raise NotFound(f"no gate {key!r} (see `qunflow gate list`)",
                           zh=f"找不到入群问卷 {key!r}(可用 `qunflow gate list` 查看)")
        versions = [dict(r._mapping) for r in conn.execute(
            select(gate_versions.c.version, gate_versions.c.applied_at, gate_versions.c.file)
            .where(gate_versions.c.key == key).order_by(gate_versions.c.version.desc()))]
        wanted = version if version is not None else row.version
        text = None
        if wanted is not None:
            text = conn.execute(select(gate_versions.c.source).where(
                gate_versions.c.key == key, gate_versions.c.version == wanted)).scalar()
            if text is None:
                raise NotFound(f"gate {key} has no version {wanted}", zh=f"入群问卷 {key} 没有第 {wanted} 版")
        used = list(conn.execute(select(entry_points.c.code).where(entry_points.c.gate_id == row.id)
                                 .order_by(entry_points.c.code)).scalars())
    title = dict(row.title or {"zh": row.name, "en": row.name})
    gate = read_gate_text(text, key)[0].gate if text else gate_from_json(key, row.definition)
    return GateView(key, title, wanted, gate, text or gate_yaml(gate, title), versions, used)


def list_gates(ws: Workspace) -> list[dict[str, Any]]:
    with ws.engine.connect() as conn:
        rows = conn.execute(select(gates).order_by(gates.c.key)).all()
        used: dict[int, int] = {}
        for gate_id in conn.execute(select(entry_points.c.gate_id)
                                    .where(entry_points.c.gate_id.is_not(None))).scalars():
            used[gate_id] = used.get(gate_id, 0) + 1
    out = []
    for r in rows:
        gate = gate_from_json(r.key, r.definition)
        out.append({"key": r.key, "title": dict(r.title or {"zh": r.name, "en": r.name}), "version": r.version,
                    "fields": len(gate.fields), "questions": len(gate.questions), "routes": len(gate.routes),
                    "first_order": gate.first_order.mode if gate.first_order else None,
                    "entry_points": used.get(r.id, 0), "updated_at": r.updated_at or r.created_at})
    return out


def tiers_without_groups(ws: Workspace, gate_key: str | None, target_tier: str) -> list[str]:
    """Tiers a pass through this gate (or a gate-less entry point) can be routed to that have no active group.
    The fallback order may still place such a pass; the warning tells the operator to add one."""
    with ws.engine.connect() as conn:
        have = set(conn.execute(select(groups.c.tier).where(groups.c.active)).scalars())
        reach = {target_tier}
        if gate_key:
            row = conn.execute(select(gates.c.definition).where(gates.c.key == gate_key)).first()
            if row is not None:
                reach |= gate_from_json(gate_key, row.definition).tiers()
    return [t for t in TIERS if t in reach and t not in have]


def version_history(ws: Workspace, key: str) -> list[dict[str, Any]]:
    """Each stored version of a gate, newest first, with its unified diff against the version before it."""
    import difflib

    with ws.engine.connect() as conn:
        rows = conn.execute(select(gate_versions).where(gate_versions.c.key == key)
                            .order_by(gate_versions.c.version)).all()
    out: list[dict[str, Any]] = []
    previous = None
    for row in rows:
        diff = "" if previous is None else "".join(difflib.unified_diff(
            previous.source.splitlines(keepends=True), row.source.splitlines(keepends=True),
            f"{key} v{previous.version}", f"{key} v{row.version}"))
        out.append({"version": row.version, "applied_at": row.applied_at, "file": row.file, "diff": diff})
        previous = row
    return out[::-1]
