"""S1 welcome (C3, P3): the welcome DM, the fixed welcome menu, the Day-1 tasks (rendered by domain.templates)."""

from __future__ import annotations

from dataclasses import dataclass

WELCOME_DM = {
    "en": ("Welcome, {{ name }}! I'm the group assistant. Two things first:\n"
           "1) fill in 3 things here (name / need / what you want to learn): {{ profile_link }}\n"
           "2) claim your new-member coupon: {{ coupon_link }}\n"
           "Then I'll match you with content and a dedicated advisor."),
    "zh": ("欢迎你,{{ name }}!我是群助手。先做两件事:\n"
           "1)在这里填3项(称呼/需求/想学什么):{{ profile_link }}\n"
           "2)领取新人券:{{ coupon_link }}\n"
           "之后我会为你匹配内容和专属顾问。"),
}

WELCOME_MENU = {
    "en": ("👋 Welcome {{ names }}! Menu:\n"
           "1. Say \"check in\" here for today's check-in\n"
           "2. New-member coupon and profile: see my private message\n"
           "3. Group rules and privacy: {{ rules_link }}"),
    "zh": ("👋 欢迎 {{ names }} 入群!群菜单:\n"
           "1. 在群里发「签到」完成今日打卡\n"
           "2. 新人券和资料填写:请看我发你的私信\n"
           "3. 群规与隐私说明:{{ rules_link }}"),
}


@dataclass(frozen=True)
class Day1Task:
    key: str
    title: dict[str, str]


DAY1_TASKS = (
    Day1Task("checkin", {"en": "Check in in the group", "zh": "在群里签到"}),
    Day1Task("profile", {"en": "Fill in your profile", "zh": "填写资料"}),
    Day1Task("claim_coupon", {"en": "Claim the new-member coupon", "zh": "领取新人券"}),
)
TASK_KEYS = frozenset(task.key for task in DAY1_TASKS)
CHECKIN_WORDS = ("签到", "打卡", "check in", "check-in", "checkin")
MENU_BATCH_SECONDS = 60  # joins within this window share one group welcome


def pick_language(locale: str | None) -> str:
    return "zh" if (locale or "zh").lower().startswith("zh") else "en"


def is_checkin(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in CHECKIN_WORDS)
