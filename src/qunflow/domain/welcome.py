"""S1 welcome (C3, P3) as data: the `kind: welcome` document, its checks, and the built-in default. No I/O.

The welcome runs in the join path (services.welcome), not in the automation worker; only its texts are data:

    kind: welcome
    title: {zh: 新人欢迎, en: New-member welcome}
    dm: {zh: "欢迎你,{{ name }}!…{{ profile_link }}", en: "Welcome, {{ name }}! …"}
    menu: {zh: "👋 欢迎 {{ names }} 入群!…", en: "👋 Welcome {{ names }}! …"}
    menu_batch_seconds: 60        # joins within this window share one group menu post
    day1_tasks:
      - {key: checkin, title: {zh: 在群里签到, en: Check in in the group}}
      - {key: profile, title: {zh: 填写资料, en: Fill in your profile}, due_hours: 48}
    variants:                     # the first that matches replaces the DM
      - {id: vip, tiers: [core], dm: {zh: "…", en: "…"}}
      - {id: poster, entry_points: [xhs-note-1], dm: {zh: "…", en: "…"}}

Problems come back as `file:line: field: message` (PlaybookErrors), like playbooks'.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from qunflow.domain.playbooks import (
    Coupon,
    PlaybookErrors,
    Problem,
    Strict,
    Text,
    _key,
    parse_kind,
)
from qunflow.domain.templates import TemplateError, check_template

KIND = "welcome"
KEY = "s1_welcome"  # the name the welcome is versioned, listed and previewed under
DM_KEY_PREFIX = "welcome_dm:"  # the welcome DM's send key (engine/outbox.py): this, then the member's id


def dm_key(member_id: str) -> str:
    """The member's welcome DM's send key: each member is welcomed once."""
    return DM_KEY_PREFIX + member_id
# What the texts may use; services.welcome fills them in.
DM_VARIABLES = frozenset({"name", "profile_link", "coupon_link", "rules_link", "group", "tier", "entry_point"})
MENU_VARIABLES = frozenset({"names", "rules_link", "group", "tier"})
CHECKIN_WORDS = ("签到", "打卡", "check in", "check-in", "checkin")


class PollOption(Strict):
    key: str
    label: Text

    _key = field_validator("key")(_key)


class Poll(Strict):
    """The question of a vote task and its options; a member answers once."""

    question: Text
    options: list[PollOption] = Field(min_length=2, max_length=12)

    @model_validator(mode="after")
    def _distinct(self) -> Poll:
        keys = [o.key for o in self.options]
        if len(set(keys)) != len(keys):
            raise ValueError("poll option keys must differ")
        return self

    def option(self, key: str) -> PollOption | None:
        return next((o for o in self.options if o.key == key), None)


class Day1Task(Strict):
    """A task assigned with the welcome; `profile` is skipped when the gate already collected a name.

    What completes it (services.tasks): `profile` saving its fields, `claim_coupon` claiming a coupon the
    ledger holds for the member (with `coupon`, one is issued on claim when none is open), a task with
    a `poll` a vote, `checkin` the check-in word in the group."""

    key: str
    title: Text
    due_hours: int = Field(default=48, ge=1, le=24 * 30)
    poll: Poll | None = None
    coupon: Coupon | None = None

    _key = field_validator("key")(_key)

    @model_validator(mode="after")
    def _kind(self) -> Day1Task:
        if self.coupon is not None and self.key != "claim_coupon":
            raise ValueError("coupon applies to the claim_coupon task only")
        if self.poll is not None and self.key in ("profile", "claim_coupon", "checkin"):
            raise ValueError(f"{self.key} is no vote task; give the poll a key of its own (e.g. vote)")
        return self


class Variant(Strict):
    """Another DM for joins into these tiers and/or through these entry points (both, when both are given)."""

    id: str
    tiers: list[str] = []
    entry_points: list[str] = []
    dm: Text

    _id = field_validator("id")(_key)

    @model_validator(mode="after")
    def _when(self) -> Variant:
        if not self.tiers and not self.entry_points:
            raise ValueError("a variant names tiers, entry_points or both")
        return self

    def matches(self, tier: str | None, entry_point: str | None) -> bool:
        return (not self.tiers or tier in self.tiers) and (not self.entry_points or entry_point in self.entry_points)


class Welcome(Strict):
    kind: Literal["welcome"]
    title: Text = Text(zh="新人欢迎", en="New-member welcome")
    dm: Text
    menu: Text
    menu_batch_seconds: int = Field(default=60, ge=1, le=3600)
    day1_tasks: list[Day1Task] = Field(default=[], max_length=20)
    variants: list[Variant] = Field(default=[], max_length=200)

    def dm_for(self, tier: str | None, entry_point: str | None) -> tuple[str, Text]:
        """(variant id or "default", the DM) for a join into `tier` through `entry_point`."""
        for variant in self.variants:
            if variant.matches(tier, entry_point):
                return variant.id, variant.dm
        return "default", self.dm

    @property
    def task_keys(self) -> frozenset[str]:
        return frozenset(task.key for task in self.day1_tasks)

    def task(self, key: str) -> Day1Task | None:
        return next((task for task in self.day1_tasks if task.key == key), None)

    def templates(self) -> dict[str, Text]:
        """Every text by name: dm, menu, dm:<variant id> (previews, checks)."""
        return {"dm": self.dm, "menu": self.menu, **{f"dm:{v.id}": v.dm for v in self.variants}}


def _text(zh: str, en: str) -> Text:
    return Text(zh=zh, en=en)


DEFAULT = Welcome(
    kind="welcome",
    dm=_text(
        "欢迎你,{{ name }}!我是群助手。先做两件事:\n"
        "1)在这里填3项(称呼/需求/想学什么):{{ profile_link }}\n"
        "2)领取新人券:{{ coupon_link }}\n"
        "之后我会为你匹配内容和专属顾问。",
        "Welcome, {{ name }}! I'm the group assistant. Two things first:\n"
        "1) fill in 3 things here (name / need / what you want to learn): {{ profile_link }}\n"
        "2) claim your new-member coupon: {{ coupon_link }}\n"
        "Then I'll match you with content and a dedicated advisor."),
    menu=_text(
        "👋 欢迎 {{ names }} 入群!群菜单:\n"
        "1. 在群里发「签到」完成今日打卡\n"
        "2. 新人券和资料填写:请看我发你的私信\n"
        "3. 群规与隐私说明:{{ rules_link }}",
        "👋 Welcome {{ names }}! Menu:\n"
        "1. Say \"check in\" here for today's check-in\n"
        "2. New-member coupon and profile: see my private message\n"
        "3. Group rules and privacy: {{ rules_link }}"),
    day1_tasks=[Day1Task(key="checkin", title=_text("在群里签到", "Check in in the group")),
                Day1Task(key="profile", title=_text("填写资料", "Fill in your profile")),
                Day1Task(key="claim_coupon", title=_text("领取新人券", "Claim the new-member coupon"))],
)
"""The built-in welcome, used while no `kind: welcome` document is applied (s1_welcome.yaml ships the same)."""

# The default texts as plain templates ({"zh": ..., "en": ...}), for callers that render them directly.
WELCOME_DM = {"zh": DEFAULT.dm.zh, "en": DEFAULT.dm.en}
WELCOME_MENU = {"zh": DEFAULT.menu.zh, "en": DEFAULT.menu.en}
DAY1_TASKS = tuple(DEFAULT.day1_tasks)
TASK_KEYS = DEFAULT.task_keys
MENU_BATCH_SECONDS = DEFAULT.menu_batch_seconds


@dataclass(frozen=True)
class WelcomeSource:
    """A parsed welcome with the document text it came from (versions keep the text) and its digest."""

    welcome: Welcome
    text: str
    file: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def is_welcome(tree: Any) -> bool:
    """Whether a YAML document is a welcome (the playbook parser leaves those to this module)."""
    return isinstance(tree, dict) and tree.get("kind") == KIND


def _problems(welcome: Welcome) -> list[tuple[tuple[Any, ...], str]]:
    """(where, what) for templates with unknown variables or bad syntax, and keys used twice."""
    out: list[tuple[tuple[Any, ...], str]] = []
    texts: list[tuple[tuple[Any, ...], Text, frozenset[str]]] = [
        (("dm",), welcome.dm, DM_VARIABLES), (("menu",), welcome.menu, MENU_VARIABLES),
        *((("variants", i, "dm"), v.dm, DM_VARIABLES) for i, v in enumerate(welcome.variants))]
    for loc, text, variables in texts:
        for lang in ("zh", "en"):
            try:
                check_template(getattr(text, lang), variables)
            except TemplateError as exc:
                out.append(((*loc, lang), str(exc)))
    for what, items in (("day1_tasks", [t.key for t in welcome.day1_tasks]),
                        ("variants", [v.id for v in welcome.variants])):
        for i, name in enumerate(items):
            if name in items[:i]:
                field = "key" if what == "day1_tasks" else "id"
                out.append(((what, i, field), f"{name!r} is used more than once in {what}"))
    return out


def parse_welcomes(text: str, file: str = "<text>") -> list[WelcomeSource]:
    """Every `kind: welcome` document of one YAML text, or PlaybookErrors naming each problem's line and field."""
    sources = [WelcomeSource(doc, chunk, file) for doc, chunk in parse_kind(text, file, KIND, Welcome, _problems, None)]
    if len(sources) > 1:
        raise PlaybookErrors([Problem(file, 1, "kind",
                                      f"a workspace has one welcome; this file defines {len(sources)}")])
    return sources


def pick_language(locale: str | None) -> str:
    return "zh" if (locale or "zh").lower().startswith("zh") else "en"


def is_checkin(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in CHECKIN_WORDS)
