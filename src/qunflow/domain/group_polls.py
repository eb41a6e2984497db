"""Group polls (issue 13, docs/polls.md): a question posted to a group, answered by replying with a number.

A reply works on every platform (no buttons, no links to open): the post lists the options numbered from 1
and a member votes by sending just that number (or the option's key) in the group. Pure: parsing the
options, the post's text, reading a reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qunflow.errors import InvalidInput

OPTION_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_OPTIONS = 9  # one digit each: a reply is a single character on every keyboard
MAX_QUESTION = 500
MAX_LABEL = 100
FOOTER = {"zh": "回复数字投票（每人一票）", "en": "Reply with the number to vote (one vote each)"}


@dataclass(frozen=True)
class Option:
    key: str
    label: str


def parse_options(values: list[str]) -> list[Option]:
    """`key=label` pairs (e.g. `a=Saturday`), 2 to 9 of them, keys distinct."""
    options: list[Option] = []
    for value in values:
        key, sep, label = value.partition("=")
        key, label = key.strip().lower(), label.strip()
        if not sep or not OPTION_KEY.fullmatch(key) or not label or len(label) > MAX_LABEL:
            raise InvalidInput(f"option {value[:60]!r} must be key=label, e.g. a=Saturday (key: a-z, 0-9, _ or -; "
                               f"label: 1-{MAX_LABEL} characters)",
                               zh=f"选项 {value[:60]!r} 须写成 key=文字，例如 a=周六（key 用小写字母、数字、_ 或 -）")
        options.append(Option(key, label))
    if not 2 <= len(options) <= MAX_OPTIONS:
        raise InvalidInput(f"a poll needs 2 to {MAX_OPTIONS} options, got {len(options)}",
                           zh=f"投票需要 2 到 {MAX_OPTIONS} 个选项，现在是 {len(options)} 个")
    if len({o.key for o in options}) != len(options):
        raise InvalidInput("poll option keys must differ", zh="投票选项的 key 不能重复")
    return options


def check_question(text: str) -> str:
    text = text.strip()
    if not text or len(text) > MAX_QUESTION:
        raise InvalidInput(f"the question must be 1-{MAX_QUESTION} characters", zh=f"问题须为 1-{MAX_QUESTION} 个字")
    return text


def post_text(question: str, options: list[Option], language: str) -> str:
    """The message posted to the group: the question, the numbered options, how to vote."""
    lines = [question, *(f"{n}. {o.label}" for n, o in enumerate(options, 1)),
             FOOTER["en" if language == "en" else "zh"]]
    return "\n".join(lines)


def could_be_vote(text: str) -> bool:
    """Whether a group message is shaped like a reply (a digit or an option key): every group message comes
    past here, and only these are worth a look in the database."""
    answer = text.strip().lower().translate(_FULL_WIDTH)
    if answer.isdigit():
        return len(answer) == 1
    return OPTION_KEY.fullmatch(answer) is not None


def read_reply(text: str, options: list[Option]) -> str | None:
    """The option a group message votes for: exactly its number or its key (full-width digits too), else None."""
    answer = text.strip().lower().translate(_FULL_WIDTH)
    if answer.isdigit() and 1 <= int(answer) <= len(options):
        return options[int(answer) - 1].key
    return next((o.key for o in options if o.key == answer and not answer.isdigit()), None)


_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
