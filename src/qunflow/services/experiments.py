"""Experiment results and the list of experiments: ship the newest events, count per variant in the
analytics store, hand the counts to domain/experiments.py (docs/experiments.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, String, cast, func, literal_column, select

from qunflow.analytics.queries import EXPERIMENT_GUARDRAILS, EXPERIMENT_LIST, EXPERIMENT_RESULTS
from qunflow.analytics.shipper import analytics
from qunflow.domain.events import Event, parse_event
from qunflow.domain.experiments import (
    CONTROL_FLOW,
    ExperimentDoc,
    ExperimentSource,
    PlaybookStep,
    RewardRule,
    assign,
    parse_experiments,
    results,
)
from qunflow.domain.metrics import make_period
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.versions import Change, store_version
from qunflow.store.memo import recall
from qunflow.store.plain import read_plain
from qunflow.store.tables import experiment_versions, experiments
from qunflow.workspace import Workspace

MAX_NAME = 200


def list_experiments(ws: Workspace, *, ship_first: bool = True) -> list[dict[str, Any]]:
    """Experiments seen in the event log: name, exposures, variants, first and last exposure (UTC)."""
    with analytics(ws, ship_first=ship_first) as engine:
        names, rows = engine.query(EXPERIMENT_LIST, {})
    out = []
    for values in rows:
        record = dict(zip(names, values, strict=True))
        out.append({"experiment": record["experiment"], "exposures": int(record["exposures"]),
                    "variants": int(record["variants"]),
                    "first_exposure": _iso(record["first_ts"]), "last_exposure": _iso(record["last_ts"])})
    return out


def _iso(value: Any) -> str | None:
    return value.replace(tzinfo=None).isoformat() + "Z" if isinstance(value, datetime) else None


def experiment_results(ws: Workspace, name: str, *, as_of: date | None = None,
                       ship_first: bool = True) -> dict[str, Any]:
    """The results contract of one experiment as of a day (default today in the workspace zone)."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"an experiment name is 1 to {MAX_NAME} characters",
                           zh=f"实验名称须为 1 到 {MAX_NAME} 个字符")
    settings = ws.settings
    period = make_period(None, None, as_of, settings.zone, ws.local_today())
    params = {"cutoff": period.cutoff, "experiment": name, "conversion": settings.conversion_types}
    with ws.engine.connect() as conn:
        doc = document(conn, name)
    guardrails = list(doc.guardrails) if doc is not None else []
    with analytics(ws, ship_first=ship_first) as engine:
        counts = _per_variant(*engine.query(EXPERIMENT_RESULTS, params))
        guardrail_counts = _per_variant(*engine.query(EXPERIMENT_GUARDRAILS, {
            **params, "tz": settings.timezone, "as_of": period.as_of,
            "engagement": settings.engagement_types})) if guardrails else {}
    if not counts and doc is None:
        raise NotFound(f"no experiment {name!r}: no document and no experiment_exposure events for it up to "
                       f"{period.as_of}",
                       zh=f"没有实验 {name!r}:截至 {period.as_of} 既没有它的定义文件,"
                          "也没有它的 experiment_exposure 事件")
    plan = doc.plan() if doc is not None else None
    if plan is not None:  # exposures to a variant the document no longer names still count, after its own
        plan += [(extra, 0.0) for extra in sorted(set(counts) - {v for v, _ in plan})]
    report = results(name, period.as_of, counts, plan, min_mature=settings.experiment_min_mature,
                     mde=settings.experiment_mde, guardrails=guardrails, guardrail_counts=guardrail_counts)
    if doc is not None:
        report.update({"document": True, "varies": doc.varies_json(), "primary_metric": doc.primary_metric,
                       "traffic": doc.traffic, "shipped": doc.shipped,
                       "start": doc.start.isoformat() if doc.start else None,
                       "stop": doc.stop.isoformat() if doc.stop else None})
    return report


def _per_variant(names: list[str], rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    counts = {}
    for values in rows:
        record = dict(zip(names, values, strict=True))
        counts[str(record.pop("variant"))] = record
    return counts


def conclusion(report: dict[str, Any], lang: str) -> str:
    """The verdict in plain words (zh/en), with a warning for each guardrail that got significantly worse
    (not after an SRM flag: then nothing in the result can be trusted)."""
    from qunflow.domain.experiments import best_variant
    from qunflow.i18n import t

    code, control = report["verdict"], report["control"]
    if code == "srm":
        return t("xp_srm", lang, p=f"{report['srm_p_value']:.2g}")
    if code == "not_enough_data":
        have = min(v["mature"] for v in report["variants"])
        text = t("xp_not_enough", lang, need=report["min_mature"], have=have)
    elif code == "winner":
        best = best_variant(report)
        c = next(c for c in report["comparisons"] if c["variant"] == best)
        text = t("xp_winner", lang, variant=best, control=control, diff=f"{c['diff'] * 100:+.1f}",
                 ci=f"{c['ci_low'] * 100:+.1f} … {c['ci_high'] * 100:+.1f}", p=f"{c['p_value']:.3g}",
                 chance=f"{c['chance_to_beat_control']:.0%}")
    else:
        text = t("xp_loser" if code == "loser" else "xp_no_difference", lang, control=control)
    for g in report.get("guardrails", []):
        if g["worse"]:
            text += " " + t("xp_guardrail_worse", lang, metric=g["metric"], variant=g["variant"],
                            diff=format_guardrail(g["diff"], g["kind"], signed=True), p=f"{g['p_value']:.3g}")
    return text


def format_guardrail(value: float | None, kind: str, *, signed: bool = False) -> str:
    """A guardrail value: a rate in percent (points for a difference), a mean with two decimals."""
    if value is None:
        return "—"
    if kind == "proportion":
        return f"{value * 100:+.1f} pt" if signed else f"{value:.1%}"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


# --- `kind: experiment` documents ------------------------------------------------------------------------

def apply_experiments(conn: Connection, sources: list[ExperimentSource], now: datetime, *,
                      dry_run: bool) -> list[Change]:
    """Store a new version of each experiment document whose text changed (in the caller's transaction)."""
    return [store_version(conn, experiments, experiment_versions, kind="experiment", key=s.experiment.key,
                          text=s.text, digest=s.digest, file=s.file, enabled=True, now=now, dry_run=dry_run)
            for s in sources]


@lru_cache(maxsize=256)
def _parsed(text: str) -> ExperimentDoc:
    return parse_experiments(text)[0].experiment


_IN_FORCE = (select(experiments.c.key, experiments.c.version, experiment_versions.c.source)
             .join(experiment_versions, (experiment_versions.c.key == experiments.c.key)
                   & (experiment_versions.c.version == experiments.c.version))
             .where(experiments.c.enabled).order_by(experiments.c.key))  # built once: read on every welcome
# "key:version key:version ..." of the experiments in force ('' for none; keys hold no space or colon), for a
# statement that reads it along with other things: a version names its text, so the same names are the same
# documents. An inbound update's first read remembers it under IN_FORCE_KEY (store/memo.py). The separator is
# SQL, not a str: SQLAlchemy renders a str one only at execution, which read_plain's SQL cannot.
IN_FORCE_NAMES = (select(func.coalesce(func.aggregate_strings(
    experiments.c.key + literal_column("':'") + cast(experiments.c.version, String),
    literal_column("' '")),  # type: ignore[arg-type]
    literal_column("''"))).where(experiments.c.enabled).scalar_subquery())
IN_FORCE_KEY = ("experiments_in_force",)
_last: tuple[frozenset[str], list[tuple[int, ExperimentDoc]]] | None = None  # what documents() last read


def documents(conn: Connection) -> list[tuple[int, ExperimentDoc]]:
    """Every applied experiment in force, with its version, by key. No read where the update's first read named
    the ones this process read last (services/join_request_read.py)."""
    global _last
    named, last = recall(IN_FORCE_KEY), _last
    if named is not None and last is not None and frozenset(named.split()) == last[0]:
        return last[1]
    rows = read_plain(conn, _IN_FORCE, {})
    found = [(row.version, _parsed(row.source)) for row in rows]
    _last = (frozenset(f"{row.key}:{row.version}" for row in rows), found)
    return found


def document(conn: Connection, key: str) -> ExperimentDoc | None:
    return next((doc for _, doc in documents(conn) if doc.key == key), None)


def welcome_variant(ws: Workspace, conn: Connection, member_id: str) -> tuple[ExperimentDoc, str] | None:
    """The running welcome experiment and the member's variant in it, or None (not in one, or no experiment).

    A shipped experiment gives every member its winner, with no exposure (nothing is being compared any more).
    """
    day = ws.local_today()
    for _, doc in documents(conn):
        if doc.varies != "welcome_dm":
            continue
        if doc.shipped is not None:
            return doc, doc.shipped
        if doc.running(day):
            variant = assign(doc.key, member_id, doc.plan(), doc.traffic)
            if variant is not None:
                return doc, variant
    return None


def step_experiments(conn: Connection, playbook_key: str) -> list[tuple[int, ExperimentDoc]]:
    """The experiments in force that vary a step of this playbook (read once per enrollment's run)."""
    return [(version, doc) for version, doc in documents(conn)
            if isinstance(doc.varies, PlaybookStep) and doc.varies.playbook == playbook_key]


def step_variant(ws: Workspace, conn: Connection, playbook_key: str, step: Any,
                 member_id: str, docs: list[tuple[int, ExperimentDoc]] | None = None,
                 ) -> tuple[ExperimentDoc, str] | None:
    """The experiment that varies this playbook step (a `send_dm` step, by its id or its template) and the
    member's variant in it, or None. Shipped: the winner for everyone, with no exposure (as the welcome)."""
    return _variant_of(ws, conn, member_id, lambda doc: isinstance(doc.varies, PlaybookStep)
                       and doc.varies.matches(playbook_key, step.id, step_label(step)), docs)


def _template_of(step: Any) -> str | None:
    return step.send_dm or step.post_group or step.notify_staff


def step_label(step: Any) -> str | None:
    """What else names a step besides its id: the template a send_dm step sends, the coupon a step issues."""
    return step.send_dm or (step.issue_coupon.name if step.issue_coupon is not None else None)


def reward_variant(ws: Workspace, conn: Connection, program: str, rule: str, role: str,
                   member_id: str) -> tuple[ExperimentDoc, str] | None:
    """The experiment that varies this reward rule's face value for this role, and the member's variant."""
    return _variant_of(ws, conn, member_id, lambda doc: isinstance(doc.varies, RewardRule)
                       and doc.varies.matches(program, rule) and role in doc.reward_roles())


def _variant_of(ws: Workspace, conn: Connection, member_id: str, wanted: Callable[[ExperimentDoc], bool],
                docs: list[tuple[int, ExperimentDoc]] | None = None) -> tuple[ExperimentDoc, str] | None:
    day: date | None = None
    for _, doc in documents(conn) if docs is None else docs:
        if not wanted(doc):
            continue
        if doc.shipped is not None:
            return doc, doc.shipped
        day = day or ws.local_today()
        if doc.running(day):
            variant = assign(doc.key, member_id, doc.plan(), doc.traffic)
            if variant is not None:
                return doc, variant
    return None


def reference_problems(conn: Connection, sources: list[ExperimentSource], playbooks: dict[str, Any],
                       programs: dict[str, Any]) -> list[str]:
    """What an experiment names that does not exist: its playbook and `send_dm` step, or its reward program,
    rule and the roles that rule rewards. `playbooks`/`programs`: those being applied now, by key (the ones in
    force are looked up)."""
    from qunflow.services.playbooks import active_playbooks
    from qunflow.services.rewards import active_programs

    in_force_playbooks = {key: pb for key, _, pb in active_playbooks(conn)}
    in_force_programs = {pr.key: pr for _, pr in active_programs(conn)}
    problems = []
    for source in sources:
        doc, where = source.experiment, f"{source.file}: experiment {source.experiment.key!r}: varies"
        if isinstance(doc.varies, PlaybookStep):
            playbook = playbooks.get(doc.varies.playbook) or in_force_playbooks.get(doc.varies.playbook)
            if playbook is None:
                problems.append(f"{where}: no playbook {doc.varies.playbook!r}")
            elif any(v.step is not None for v in doc.variants):  # a whole step in its place
                target = next((st for st in playbook.steps
                               if doc.varies.matches(playbook.key, st.id, step_label(st))), None)
                if target is None:
                    problems.append(f"{where}: playbook {playbook.key!r} has no step with id {doc.varies.step!r}")
                elif target.action in CONTROL_FLOW:
                    problems.append(f"{where}: step {doc.varies.step!r} is a {target.action}: a variant may "
                                    "replace what a step does, not the playbook's flow")
                for variant in doc.variants:
                    name = _template_of(variant.step) if variant.step is not None else None
                    if name is not None and name not in playbook.templates:
                        problems.append(f"{where}: variant {variant.key!r} sends template {name!r}, which playbook "
                                        f"{playbook.key!r} does not define")
            else:
                action = "issue_coupon" if any(v.coupon_value is not None for v in doc.variants) else "send_dm"
                named = "coupon" if action == "issue_coupon" else "template"
                if not any(st.action == action and doc.varies.matches(playbook.key, st.id, step_label(st))
                           for st in playbook.steps):
                    problems.append(f"{where}: playbook {playbook.key!r} has no {action} step with id or {named} "
                                    f"{doc.varies.step!r}")
        elif isinstance(doc.varies, RewardRule):
            program = programs.get(doc.varies.reward_program) or in_force_programs.get(doc.varies.reward_program)
            rule = next((r for r in program.rules if r.id == doc.varies.rule), None) if program else None
            if program is None:
                problems.append(f"{where}: no reward program {doc.varies.reward_program!r}")
            elif rule is None:
                problems.append(f"{where}: reward program {program.key!r} has no rule {doc.varies.rule!r}")
            elif missing := sorted(doc.reward_roles() - set(rule.coupons())):
                problems.append(f"{where}: rule {rule.id!r} rewards no {', '.join(missing)} (it rewards "
                                f"{', '.join(rule.coupons())})")
    return problems


def exposure_event(doc: ExperimentDoc, variant: str, member_id: str, at: datetime) -> Event:
    """The member's exposure: one per member and experiment (the event id makes a second one a no-op)."""
    return parse_event({"event_id": f"xp-{doc.key}-{member_id}", "type": "experiment_exposure",
                        "ts": at.replace(tzinfo=UTC).isoformat(), "member_id": member_id,
                        "experiment": doc.key, "variant": variant})
