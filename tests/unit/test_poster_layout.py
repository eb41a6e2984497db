"""The poster's pure layout: CJK and English wrapping within a width, blocks that do not overlap."""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import qunflow
from qunflow.domain.poster import CLOSING, OPENING, Copy, layout, money, offer_of, tokens, wrap
from qunflow.domain.rewards import parse_programs


def measure(text: str, size: int) -> float:
    """Like a real CJK font: wide characters one em, others half an em."""
    return sum(size if unicodedata.east_asian_width(c) in ("W", "F") else size / 2 for c in text)


def squeeze(text: str) -> str:
    return "".join(text.split())


def test_chinese_wraps_by_character_width_without_spaces() -> None:
    text = "扫码入群,领¥10新人券+免费咨询,邀请好友一起学习成长"
    lines = wrap(text, 300, 30, measure)  # 10 wide characters per line
    assert len(lines) >= 3
    assert all(measure(line, 30) <= 300 for line in lines)
    assert "".join(lines) == text  # nothing lost, nothing added
    assert any(len(line) >= 9 for line in lines)  # lines are filled, not broken at every character


def test_no_line_starts_with_closing_or_ends_with_opening_punctuation() -> None:
    text = "大家好,欢迎来到《增长实战》社群!请先阅读群规。然后做任务,领取奖励。"
    for width in range(120, 600, 30):
        lines = wrap(text, width, 30, measure)
        assert "".join(lines) == text
        assert all(line[0] not in CLOSING and line[-1] not in OPENING for line in lines), (width, lines)


def test_money_stays_together_in_chinese() -> None:
    assert [t.text for t in tokens("领¥10新人券")] == ["领", "¥10", "新", "人", "券"]


def test_english_wraps_at_spaces_and_keeps_words_whole() -> None:
    text = "Scan to join, get a ¥10 new-member coupon + free consultation"
    lines = wrap(text, 260, 30, measure)
    assert len(lines) > 1 and all(measure(line, 30) <= 260 for line in lines)
    assert " ".join(lines) == text
    assert set(" ".join(lines).split()) == set(text.split())


def test_a_word_longer_than_the_line_is_cut_by_characters() -> None:
    word = "https://example.com/r/abcdefghjkmnpqrstuvwxyz"
    lines = wrap(f"open {word} now", 200, 20, measure)
    assert all(measure(line, 20) <= 200 for line in lines)
    assert squeeze("".join(lines)) == squeeze(f"open {word} now")


@given(st.text(alphabet=st.sampled_from(list("邀请好友入群领券 abcXYZ12,。!(《》)¥")), max_size=80),
       st.integers(min_value=60, max_value=700))
def test_any_text_wraps_within_width_and_loses_nothing(text: str, width: int) -> None:
    lines = wrap(text, width, 20, measure)
    assert squeeze("".join(lines)) == squeeze(text)
    for line in lines:
        assert line == line.strip()
        # only a single unbreakable piece (one wide char glued to punctuation) may overflow
        assert measure(line, 20) <= width or len(tokens(line)) == 1


def test_layout_keeps_blocks_apart_and_on_the_canvas() -> None:
    copy = Copy(main="扫码入群,领 ¥10 新人券 + 免费咨询", sub="邀请 1 人再得 ¥20;邀请 3 人解锁 VIP 特权",
                inviter="李雷 邀请你加入", caption="长按识别或扫码加入")
    plan = layout(copy, measure)
    roles = [line.role for line in plan.lines]
    assert roles[0] == "inviter" and "main" in roles and "sub" in roles and roles[-1] == "caption"
    for line in plan.lines:
        assert line.x >= 0 and line.x + measure(line.text, line.size) <= plan.width
        assert line.y >= 0 and line.y + line.size <= plan.height
    text_bottom = max(line.y + line.size for line in plan.lines if line.role != "caption")
    assert text_bottom <= plan.card.y + plan.card.height < plan.qr.y
    caption = plan.lines[-1]
    assert caption.y >= plan.qr.y + plan.qr.height
    tops = [line.y for line in plan.lines]
    assert tops == sorted(tops)  # top to bottom, no line drawn over another


def test_long_copy_shrinks_the_font_instead_of_overflowing() -> None:
    short = layout(Copy(main="扫码入群", sub="邀请", inviter=None, caption="扫码"), measure)
    long = layout(Copy(main="扫码入群" * 12, sub="邀请", inviter=None, caption="扫码"), measure)
    main_short = [line for line in short.lines if line.role == "main"]
    main_long = [line for line in long.lines if line.role == "main"]
    assert len(main_short) == 1 and main_long[0].size < main_short[0].size and len(main_long) <= 3


def test_offer_comes_from_the_shipped_s3_program() -> None:
    path = Path(qunflow.__file__).parent / "playbooks" / "s3_referral_rewards.yaml"
    offer = offer_of(parse_programs(path.read_text(encoding="utf-8"))[0].program)
    assert (offer.invitee, offer.inviter, offer.team_size) == (Decimal(10), Decimal(20), 3)


def test_money() -> None:
    assert [money(Decimal(v)) for v in ("20", "20.00", "9.90", "100")] == ["¥20", "¥20", "¥9.9", "¥100"]
