"""A naive reading of the keyword-rule semantics: one Python `re.search` per keyword and regex per rule.

Used by tests as an oracle for qunflow.domain.keywords and by bench/bench_keywords.py as the baseline.
Written from the module docstring, without its code: NFKC, case folding, whole words at alphabetic ends.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

# A word character is what Python's \w accepts, minus scripts written without spaces (from U+2E80 on).
_WORD = r"[^\W\u2e80-\U0010ffff]"


def _keyword_regex(word: str, whole_words: bool) -> re.Pattern[str]:
    body = re.escape(word)
    if whole_words and re.fullmatch(_WORD, word[0]):
        body = f"(?<!{_WORD})" + body
    if whole_words and re.fullmatch(_WORD, word[-1]):
        body += f"(?!{_WORD})"
    return re.compile(body)


class NaiveMatcher:
    """Rules as precompiled Python regexes, tried one after another for every message."""

    def __init__(self, rules: Sequence[Any]) -> None:
        order = sorted(range(len(rules)), key=lambda i: (-rules[i].priority, i))
        self.rules = [rules[i] for i in order]
        self._compiled = []
        for rule in self.rules:
            fold = (lambda s: s) if rule.case_sensitive else str.casefold
            words = [fold(unicodedata.normalize("NFKC", k)) for k in rule.keywords]
            keywords = [(k, w, _keyword_regex(w, rule.whole_words)) for k, w in zip(rule.keywords, words, strict=True)]
            flags = 0 if rule.case_sensitive else re.IGNORECASE
            regexes = [(p, re.compile(p, flags)) for p in rule.regexes]
            self._compiled.append((keywords, regexes))

    def match(self, text: str, scope: str = "group", group: str | None = None,
              tier: str | None = None) -> list[tuple[str, tuple[tuple[str, str, bool], ...]]]:
        nfkc = unicodedata.normalize("NFKC", text)
        folded = nfkc.casefold()
        out = []
        for rule, (keywords, regexes) in zip(self.rules, self._compiled, strict=True):
            if rule.scope not in ("any", scope):
                continue
            if (rule.groups and group not in rule.groups) or (rule.tiers and tier not in rule.tiers):
                continue
            subject = nfkc if rule.case_sensitive else folded
            hits = [(k, w, False) for k, w, pattern in keywords if pattern.search(subject)]
            for source, pattern in regexes:
                found = pattern.search(nfkc)
                if found:
                    hits.append((source, found.group(0), True))
            if hits:
                out.append((rule.id, tuple(hits)))
                if rule.stop:
                    break
        return out


def as_tuples(matches: Sequence[Any]) -> list[tuple[str, tuple[tuple[str, str, bool], ...]]]:
    """qunflow's Match objects in the reference's shape."""
    return [(m.rule_id, tuple((h.pattern, h.text, h.regex) for h in m.hits)) for m in matches]
