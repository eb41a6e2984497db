"""Consent per purpose (P8): what a member agreed to, and the chat words that change it. No I/O.

Two purposes:
- `profile`: the community profile (gate answers) kept to match the member with groups and content;
  the gate asks for it and nobody passes the gate without it.
- `marketing`: marketing messages (promotions, offers, event invites: playbooks with `marketing: true`).
  An unticked box on the gate, a personal link, or a reply word grants it; a keyword (退订 / STOP) or the
  unsubscribe link in every marketing DM withdraws it.
- `waitlist`: a contact left when every group a gate could send the person to was full, used only to say
  a seat opened (issue 12).

Consent rows are append-only; the newest row of a purpose is the one in force. No row means "not asked".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

PROFILE = "profile"
MARKETING = "marketing"
WAITLIST = "waitlist"  # a contact left on the waitlist, to be told when a seat opens (services/waitlist.py)
PURPOSES = (PROFILE, MARKETING, WAITLIST)
TEXT_VERSION = "2026-12"  # the privacy notice's version the gate and the consent page show
SOURCES = ("gate", "keyword", "link", "welcome_reply", "api", "console")
DEFAULT_UNSUBSCRIBE = ["退订", "STOP", "unsubscribe"]
DEFAULT_SUBSCRIBE = ["订阅", "SUBSCRIBE"]


@dataclass(frozen=True)
class ConsentRecord:
    purpose: str
    granted: bool
    recorded_at: datetime
    source: str | None = None
    text_version: str = TEXT_VERSION


def in_force(records: Iterable[ConsentRecord]) -> dict[str, bool]:
    """purpose -> granted, from the newest record of each purpose (records in the order they were made)."""
    current: dict[str, tuple[datetime, bool]] = {}
    for record in records:
        seen = current.get(record.purpose)
        if seen is None or record.recorded_at >= seen[0]:
            current[record.purpose] = (record.recorded_at, record.granted)
    return {purpose: granted for purpose, (_at, granted) in current.items()}


def _normal(text: str) -> str:
    """Case-folded, full-width folded (ＳＴＯＰ), without surrounding spaces and end punctuation."""
    folded = unicodedata.normalize("NFKC", text).strip().casefold()
    return re.sub(r"[\s!.。~]+$", "", folded)


def is_command(text: str, words: Sequence[str]) -> bool:
    """Whether a message is one of these words on its own ("退订", "stop!", "ＳＴＯＰ"), not a word in a sentence."""
    said = _normal(text)
    return bool(said) and any(said == _normal(word) for word in words if word.strip())
