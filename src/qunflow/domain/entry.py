"""Entry points (C1, P1): codes, channel kinds, tiers and UTM attribution."""

from __future__ import annotations

import re
from collections.abc import Mapping

from qunflow.errors import InvalidInput

CHANNEL_KINDS = ("ad", "content", "website", "offline", "referral")
TIERS = ("newbie", "interest", "core", "broadcast")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{2,32}$")
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


# The record kinds and fields these checks name, in Chinese (the console's words, i18n.py).
ZH_KINDS = {"channel": "渠道", "campaign": "活动", "event": "活动", "gate": "入群问卷", "group": "群",
            "channel kind": "渠道类型", "tier": "层级"}


def check_code(code: str) -> str:
    if not CODE_PATTERN.match(code):
        raise InvalidInput(f"entry code {code!r}: 2-32 letters, digits, '-' or '_'",
                           zh=f"入口代码 {code!r}：2-32 个字母、数字、“-”或“_”")
    return code


def check_key(kind: str, key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise InvalidInput(f"{kind} key {key!r}: lower-case letters, digits, '.', '-' or '_' (max 64)",
                           zh=f"{ZH_KINDS.get(kind, kind)}标识 {key!r}：只能用小写字母、数字、“.”、“-”或“_”"
                              "（最多 64 个）")
    return key


def check_choice(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInput(f"{kind} {value!r} is not one of: {', '.join(allowed)}",
                           zh=f"{ZH_KINDS.get(kind, kind)} {value!r} 不在可选范围内：{'、'.join(allowed)}")
    return value


def merge_utm(defaults: Mapping[str, str], query: Mapping[str, str]) -> dict[str, str]:
    """The UTM parameters of a visit: the entry point's defaults, overridden by the URL's."""
    merged = {k: str(v)[:200] for k, v in defaults.items() if k in UTM_KEYS and v}
    merged.update({k: str(v)[:200] for k, v in query.items() if k in UTM_KEYS and v})
    return merged
