"""The referral poster's layout (S3), as plain values: sizes, positions and wrapped lines.

Nothing here draws: text widths come from a `measure(text, size)` function (the renderer passes one
backed by the real font), so the layout is the same whatever draws it and can be tested without fonts.
Chinese has no spaces between words: a line may break after any wide (CJK) character, but never before
closing punctuation (,。!?) nor after opening punctuation ((《「); Latin text breaks at spaces, and
a word longer than the line is cut by characters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from qunflow.domain.rewards import Program

Measure = Callable[[str, int], float]  # width in pixels of `text` at font size `size`

WIDTH, HEIGHT = 750, 1334  # a phone screen's proportions: shared in chats and moments
MARGIN = 56
QR_SIZE = 360
LINE_SPACING = 1.35

CLOSING = set(",。、;:!?)》」』】〕〉”’…—%,.;:!?)]}%")
OPENING = set("(《「『【〔〈“‘¥$([{")


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


@dataclass(frozen=True)
class Token:
    """An unbreakable piece of text, and whether a space separated it from the previous one."""

    text: str
    space_before: bool = False


def tokens(text: str) -> list[Token]:
    """Split text into the pieces a line may break between."""
    raw: list[Token] = []
    word, space = "", False
    for char in text:
        if char.isspace():
            if word:
                raw.append(Token(word, space))
                word = ""
            space = bool(raw)
        elif _wide(char) and char not in CLOSING and char not in OPENING:
            if word:
                raw.append(Token(word, space))
                word, space = "", False
            raw.append(Token(char, space))
            space = False
        else:
            word += char
    if word:
        raw.append(Token(word, space))
    return _glue(raw)


def _glue(raw: list[Token]) -> list[Token]:
    """Closing punctuation sticks to what precedes it, opening punctuation to what follows."""
    out: list[Token] = []
    for token in raw:
        if out and not token.space_before and (token.text[0] in CLOSING or out[-1].text[-1] in OPENING):
            out[-1] = Token(out[-1].text + token.text, out[-1].space_before)
        else:
            out.append(token)
    return out


def _split_long(word: str, width: float, size: int, measure: Measure) -> list[str]:
    pieces: list[str] = []
    current = ""
    for char in word:
        if current and measure(current + char, size) > width:
            pieces.append(current)
            current = char
        else:
            current += char
    if current:
        pieces.append(current)
    return pieces


def wrap(text: str, width: float, size: int, measure: Measure) -> list[str]:
    """Greedy line breaking of `text` within `width` pixels at font size `size`."""
    lines: list[str] = []
    current = ""
    for token in tokens(text):
        candidate = current + (" " if token.space_before and current else "") + token.text
        if not current or measure(candidate, size) <= width:
            current = candidate
        else:
            lines.append(current)
            current = token.text
        if measure(current, size) > width:  # one word wider than the line: cut it by characters
            *full, current = _split_long(current, width, size, measure)
            lines.extend(full)
    if current:
        lines.append(current)
    return lines


def fit(text: str, width: float, measure: Measure, *, largest: int, smallest: int,
        max_lines: int) -> tuple[int, list[str]]:
    """The largest font size (stepping down by 2) at which `text` takes at most `max_lines` lines."""
    size = largest
    lines = wrap(text, width, size, measure)
    while len(lines) > max_lines and size > smallest:
        size = max(smallest, size - 2)
        lines = wrap(text, width, size, measure)
    return size, lines


@dataclass(frozen=True)
class TextLine:
    text: str
    x: int
    y: int  # top of the line box
    size: int
    role: str  # inviter, main, sub, caption


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    lines: list[TextLine]
    card: Box  # the light panel behind the text (keeps the copy readable over any artwork)
    qr: Box


@dataclass(frozen=True)
class Copy:
    """The poster's texts, already in the member's language."""

    main: str
    sub: str
    inviter: str | None  # "<name> invites you", when the member's name is known
    caption: str


def _block(text: str, role: str, top: int, measure: Measure, *, largest: int, smallest: int,
           max_lines: int, width: int) -> tuple[list[TextLine], int]:
    size, wrapped = fit(text, width - 2 * MARGIN, measure, largest=largest, smallest=smallest,
                        max_lines=max_lines)
    step = round(size * LINE_SPACING)
    out = [TextLine(line, round((width - measure(line, size)) / 2), top + i * step, size, role)
           for i, line in enumerate(wrapped)]
    return out, top + step * len(wrapped)


def layout(copy: Copy, measure: Measure, *, width: int = WIDTH, height: int = HEIGHT) -> Layout:
    """Where everything goes: name line, main copy, sub copy at the top; QR code and caption below."""
    lines: list[TextLine] = []
    top = 120
    if copy.inviter:
        block, top = _block(copy.inviter, "inviter", top, measure, largest=34, smallest=24, max_lines=1,
                            width=width)
        lines += block
        top += 28
    block, top = _block(copy.main, "main", top, measure, largest=60, smallest=36, max_lines=3, width=width)
    lines += block
    top += 24
    block, top = _block(copy.sub, "sub", top, measure, largest=38, smallest=26, max_lines=3, width=width)
    lines += block
    card = Box(MARGIN // 2, 72, width - MARGIN, top + 40 - 72)
    caption_size = 28
    qr_top = height - 120 - caption_size - 24 - QR_SIZE
    qr = Box((width - QR_SIZE) // 2, max(qr_top, card.y + card.height + 40), QR_SIZE, QR_SIZE)
    caption_y = qr.y + QR_SIZE + 24
    lines.append(TextLine(copy.caption, round((width - measure(copy.caption, caption_size)) / 2), caption_y,
                          caption_size, "caption"))
    return Layout(width, max(height, caption_y + caption_size + 80), lines, card, qr)


def money(value: Decimal) -> str:
    """¥20, ¥9.9: no trailing zeros."""
    text = f"{value.normalize():f}"
    return "¥" + (text.rstrip("0").rstrip(".") if "." in text else text)


@dataclass(frozen=True)
class Offer:
    """The S3 values on the poster: the invitee's new-member coupon, the inviter's reward for one invite."""

    invitee: Decimal | None
    inviter: Decimal | None
    team_size: int = 3  # "invite N to unlock VIP perks"


def offer_of(program: Program) -> Offer:
    """The values a reward program promises, taken from its invite rules (smallest threshold first)."""
    rules = sorted((r for r in program.rules if r.invitees), key=lambda r: r.invitees or 0)
    invitee = next((program.coupons[r.invitee].value for r in rules if r.invitee), None)
    inviter = next((program.coupons[r.inviter].value for r in rules if r.inviter), None)
    teams = [r.invitees for r in rules if r.invitees and r.invitees > 1]
    return Offer(invitee, inviter, teams[0] if teams else 3)
