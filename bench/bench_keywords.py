"""Keyword rules at scale: messages/s of the compiled matcher against a naive loop of regexes, same rules.

10,000 rules (Chinese and English keywords, product codes, about one in ten with an RE2 regex), 100,000
seeded chat messages (Chinese, English, mixed, some full-width). The naive loop (tests/reference_keywords.py:
one precompiled Python regex per keyword and regex, tried rule by rule) is timed on a slice of the messages
because it is slow; on that slice the two must agree exactly, match for match.
Run: python bench/bench_keywords.py [--rules 10000] [--messages 100000] [--naive-messages 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOPICS = ["课程", "价格", "退款", "优惠券", "报名", "直播", "回放", "资料", "发票", "会员", "续费", "打卡", "作业",
          "老师", "顾问", "二维码", "链接", "地址", "时间", "证书", "考试", "试听", "班级", "教材", "学费", "分期",
          "团购", "拼团", "砍价", "积分", "签到", "抽奖", "红包", "返现", "邀请", "海报", "客服", "售后", "物流",
          "快递", "训练营", "社群", "群主", "新人", "体验课", "公开课", "题库", "笔记", "模板", "工具包"]
ASKS = ["多少钱", "怎么用", "在哪里", "什么时候", "能不能", "有没有", "怎么领", "过期了", "不能用", "发一下", "怎么退",
        "还有吗", "是真的吗", "好贵", "太难了", "看不了", "打不开", "怎么报名", "要多久", "包邮吗"]
ENGLISH = ["refund", "price", "coupon", "invoice", "discount", "replay", "live", "zoom", "link", "vip", "trial",
           "certificate", "homework", "deadline", "schedule", "support", "shipping", "promo", "bundle", "upgrade"]
CHATTER = ["大家好", "今天天气不错", "收到", "谢谢老师", "哈哈哈", "好的", "明白了", "早上好", "加油", "学到了",
           "thanks", "ok", "good morning", "nice", "got it", "see you", "👍", "🙏", "[表情]", "晚安"]
FULL_WIDTH = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                           "ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ０１２３４５６７８９")


def make_rules(count: int, rng: random.Random) -> list:
    from qunflow.domain.keywords import KeywordRule

    rules = []
    for n in range(count):
        topic, ask, word = rng.choice(TOPICS), rng.choice(ASKS), rng.choice(ENGLISH)
        kind = rng.random()
        keywords: list[str] = []
        regexes: list[str] = []
        if kind < 0.45:  # a Chinese question about one course or product
            keywords = [f"{topic}{ask}", f"{rng.choice(TOPICS)}{n}"]
        elif kind < 0.70:  # English, often whole-word, with a numbered product
            keywords = [f"{word} {rng.choice(ENGLISH)}", f"{word}{n}"]
        elif kind < 0.90:  # product codes, mixed zh/en
            keywords = [f"SKU{n:05d}", f"{topic}-{word}-{n}"]
        elif kind < 0.95:
            regexes = [rng.choice([
                rf"{topic}.{{0,6}}\d{{{rng.randint(2, 3)},6}}元",
                rf"(?:{topic}|{word})[\u4e00-\u9fa5]{{0,3}}{ask}",
                rf"订单号?\s*[:：]?\s*{n % 97:02d}\d{{6,}}",
                rf"{word}[- ]?{n}[a-z]?\d*",
            ])]
            keywords = [f"{topic}{n}"]
        else:
            regexes = [rf"{topic}{ask[:2]}.{{0,4}}{rng.choice(['吗', '呢', '啊'])}", rf"(?i){word}#{n}"]
        rules.append(KeywordRule(
            f"rule-{n}", keywords, regexes,
            scope=rng.choice(["any", "any", "any", "group", "private"]),
            groups=rng.choice([[], [], [], [f"g{rng.randrange(20)}"]]),
            tiers=rng.choice([[], [], ["vip"], ["newbie"]]),
            whole_words=kind >= 0.45 and kind < 0.70, priority=rng.choice([0, 0, 0, 1, 5]),
            stop=rng.random() < 0.02, actions=[{"reply": f"t{n % 50}"}]))
    return rules


def make_messages(count: int, rules: list, rng: random.Random) -> list[str]:
    messages = []
    for _ in range(count):
        parts = [rng.choice(CHATTER)]
        roll = rng.random()
        if roll < 0.35:  # quotes a keyword of some rule
            rule = rng.choice(rules)
            parts.append(rng.choice(rule.keywords) if rule.keywords else rng.choice(TOPICS) + rng.choice(ASKS))
        elif roll < 0.45:
            parts.append(f"{rng.choice(TOPICS)}{rng.choice(ASKS)}?订单号:{rng.randrange(100):02d}{rng.randrange(10**8)}")
        elif roll < 0.55:
            parts.append(f"{rng.choice(ENGLISH)} {rng.choice(ENGLISH)}{rng.randrange(12000)} pls")
        else:
            parts.append(rng.choice(TOPICS) + rng.choice(CHATTER))
        if rng.random() < 0.5:
            parts.append(rng.choice(CHATTER))
        text = rng.choice([" ", ",", ""]).join(parts)
        if rng.random() < 0.1:
            text = text.translate(FULL_WIDTH)
        elif rng.random() < 0.1:
            text = text.upper()
        messages.append(text)
    return messages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--naive-messages", type=int, default=1_000, help="messages the naive loop is timed on")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from tests.reference_keywords import NaiveMatcher, as_tuples

    from qunflow.domain.keywords import compile_rules

    rng = random.Random(args.seed)
    rules = make_rules(args.rules, rng)
    messages = make_messages(args.messages, rules, rng)
    contexts = [(rng.choice(["group", "group", "private"]), f"g{rng.randrange(20)}",
                 rng.choice([None, "vip", "newbie"])) for _ in messages]

    started = time.perf_counter()
    matcher = compile_rules(rules)
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    naive = NaiveMatcher(rules)
    naive_compile_s = time.perf_counter() - started

    started = time.perf_counter()
    fast = [matcher.match(text, *context) for text, context in zip(messages, contexts, strict=True)]
    fast_s = time.perf_counter() - started
    sample = min(args.naive_messages, len(messages))
    started = time.perf_counter()
    slow = [naive.match(text, *context) for text, context in zip(messages[:sample], contexts, strict=False)]
    slow_s = time.perf_counter() - started

    disagree = sum(as_tuples(f) != s for f, s in zip(fast, slow, strict=False))
    sample_matched = sum(1 for found in slow if found)
    matched = sum(1 for found in fast if found)
    keywords = sum(len(r.keywords) for r in rules)
    regexes = sum(len(r.regexes) for r in rules)
    load = os.getloadavg()[0]
    table = Table(title=f"Keyword rules: {len(rules):,} rules ({keywords:,} keywords, {regexes:,} regexes), "
                        f"load {load:.1f} on {os.cpu_count()} cores")
    for column in ("matcher", "compile s", "messages", "seconds", "messages/s", "µs/message"):
        table.add_column(column, justify="left" if column == "matcher" else "right")
    table.add_row("qunflow (Aho-Corasick + RE2 filter)", f"{compile_s:.2f}", f"{len(messages):,}", f"{fast_s:.2f}",
                  f"{len(messages) / fast_s:,.0f}", f"{fast_s / len(messages) * 1e6:.1f}")
    table.add_row("naive loop of Python regexes", f"{naive_compile_s:.2f}", f"{sample:,}", f"{slow_s:.2f}",
                  f"{sample / slow_s:,.0f}", f"{slow_s / sample * 1e6:.1f}")
    Console(width=130).print(table)
    print(f"speed-up {len(messages) / fast_s / (sample / slow_s):,.0f}x; messages with at least one match: "
          f"{matched:,} of {len(messages):,}; on the {sample:,} messages both ran ({sample_matched:,} with a match) "
          f"they disagree on {disagree}")
    if disagree:
        sys.exit(1)


if __name__ == "__main__":
    main()
