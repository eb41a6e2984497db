"""What the console, the API and the CLI show of playbooks: details, template previews, dead letters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from qunflow.domain.playbooks import Playbook
from qunflow.domain.templates import preview_template
from qunflow.domain.welcome import KEY as WELCOME_KEY
from qunflow.engine.outbox import dead_sends
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.automation import DEAD, retry_dead, split_ids
from qunflow.services.playbooks import load_version, playbook_overview
from qunflow.store.tables import deliveries, enrollments, playbooks
from qunflow.workspace import Workspace

LANGS = ("zh", "en")


def sample_values(ws: Workspace, lang: str) -> dict[str, str]:
    """Made-up values a preview fills in, as a real member of a newbie group would get them."""
    base = ws.settings.public_url.rstrip("/")
    zh = lang == "zh"
    return {"name": "小明" if zh else "Alex", "advisor": "小Q" if zh else "Q", "coupon_code": "WELCOME8K2P",
            "coupon_value": "20", "link": base, "member_link": f"{base}/m/sample/task/profile",
            "group": "新人 1 群" if zh else "Newbie group 1", "tier": "newbie",
            "poster_link": f"{base}/m/sample/poster.png", "member_id": "m_0123456789abcdef",
            "console_link": f"{base}/console/members/m_0123456789abcdef"}


def _current(ws: Workspace, key: str) -> Playbook:
    with ws.engine.connect() as conn:
        version = conn.execute(select(playbooks.c.version).where(playbooks.c.key == key)).scalar()
        if version is None:
            raise NotFound(f"no playbook {key!r} (see `qunflow playbooks list`)",
                           zh=f"找不到剧本 {key!r}(可用 `qunflow playbooks list` 查看)")
        return load_version(conn, key, version)


def preview(ws: Workspace, key: str, template: str, lang: str) -> str:
    """One template of a playbook's current version, rendered with sample values in `lang`.
    The welcome (`s1_welcome`) has its own texts: dm, menu, dm:<variant> (services.welcome_docs)."""
    if key == WELCOME_KEY:
        from qunflow.services.welcome_docs import preview as welcome_preview

        return welcome_preview(ws, template, lang)
    if lang not in LANGS:
        raise InvalidInput(f"lang must be zh or en, got {lang!r}", zh=f"语言须为 zh 或 en,当前为 {lang!r}")
    playbook = _current(ws, key)
    if template not in playbook.templates:
        known = ", ".join(sorted(playbook.templates)) or "none"
        raise NotFound(f"playbook {key!r} has no template {template!r} (templates: {known})",
                       zh=f"剧本 {key!r} 没有模板 {template!r}(现有模板:{known})")
    return preview_template(getattr(playbook.templates[template], lang), sample_values(ws, lang), lang)


def _describe(step: Any) -> str:
    """The step's argument in a few words (template name, tag, coupon...)."""
    for name in ("send_dm", "post_group", "notify_staff", "assign_task", "add_tag", "remove_tag", "move_tier",
                 "move_group"):
        value = getattr(step, name)
        if value is not None:
            return str(value)
    if step.wait is not None:
        return ", ".join(f"{k} {v}" for k, v in step.wait.model_dump(exclude_defaults=True).items())
    if step.issue_coupon is not None:
        return f"{step.issue_coupon.name} {step.issue_coupon.value:g}"
    if step.advisor_task is not None:
        return step.advisor_task.title.en
    if step.branch is not None:
        return f"→ {step.branch.goto}" + (f" / {step.branch.else_goto}" if step.branch.else_goto else "")
    return ""


def playbook_details(ws: Workspace, lang: str = "en") -> list[dict[str, Any]]:
    """The overview (versions, counts per step) with each step described and every template previewed."""
    out = []
    for item in playbook_overview(ws):
        playbook = _current(ws, item["key"])
        for entry, step in zip(item["steps"], playbook.steps, strict=True):
            entry["detail"] = _describe(step)
        values = sample_values(ws, lang)
        item["title_text"] = getattr(playbook.title, lang)
        item["title"] = {"zh": playbook.title.zh, "en": playbook.title.en}
        item["marketing"] = playbook.marketing
        item["templates"] = [{"name": name, "preview": preview_template(getattr(text, lang), values, lang)}
                             for name, text in sorted(playbook.templates.items())]
        out.append(item)
    return out


def dead_letter_details(ws: Workspace, limit: int = 200) -> list[dict[str, Any]]:
    """Dead letters, newest first: playbook steps with the step described (on the version the enrollment
    runs), then sends of every kind (welcome, menu, reply, playbook, coupon) with where they were going."""
    e = enrollments.c
    with ws.engine.connect() as conn:
        rows = [{**dict(r._mapping), "kind": "step"} for r in conn.execute(
            select(e.id, e.playbook_key, e.version, e.subject, e.step, e.last_error, e.updated_at)
            .where(DEAD).order_by(e.updated_at.desc(), e.id.desc()).limit(limit))]
        for row in rows:
            playbook = load_version(conn, row["playbook_key"], row["version"])
            step = playbook.steps[row["step"]] if row["step"] < len(playbook.steps) else None
            row["action"] = step.action if step is not None else ""
            row["detail"] = _describe(step) if step is not None else ""
    sends = [{"id": f"s{d['id']}", "kind": "send", "playbook_key": "", "version": None,
              "subject": d["member_id"] or d["target"], "step": None, "last_error": d["error"],
              "updated_at": d["created_at"], "action": d["kind"], "detail": f"{d['platform']}:{d['target']}"}
             for d in dead_sends(ws, limit)]
    return rows + sends


def retry_dead_letter(ws: Workspace, letter_id: int | str, *, skip_step: bool = False) -> dict[str, Any]:
    """Put one dead letter back in line (or past its failed step, or skip the send); NotFound when it is
    not a dead letter."""
    try:
        steps, sends = split_ids([letter_id])
        retry_dead(ws, [letter_id], skip_step=skip_step)
    except NotFound:
        raise NotFound(f"no dead letter {letter_id} (it may have been retried already)",
                       zh=f"找不到失败消息 {letter_id}(可能已经重试过)") from None
    with ws.engine.connect() as conn:
        if sends:
            send = conn.execute(select(deliveries.c.id, deliveries.c.status, deliveries.c.next_at.label("due_at"))
                                .where(deliveries.c.id == sends[0])).one()
            return {**dict(send._mapping), "id": f"s{send.id}", "step": None}
        step = conn.execute(select(enrollments.c.id, enrollments.c.status, enrollments.c.step, enrollments.c.due_at)
                            .where(enrollments.c.id == steps[0])).one()
    return dict(step._mapping)
