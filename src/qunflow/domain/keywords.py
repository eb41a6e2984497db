"""Keyword rules (P7): which rules a group or private message triggers, fast with thousands of rules.

Text is normalised before matching: NFKC (full-width ＡＢＣ/１２３ become ABC/123) and, unless a rule
is case-sensitive, case folding. Keywords are substrings (Chinese has no word boundaries); a rule may ask
for whole words, which then applies only at keyword ends that are letters or digits of alphabetic scripts,
so "vip" still matches in "我是vip会员" but not in "vipshop". All literal keywords go into one
Aho-Corasick automaton and all regexes into one RE2 FilteredRE2 (a literal prefilter in front of the
regexes), so a message costs one pass per engine, not one search per rule.

Regexes use RE2 syntax, which guarantees linear time: no lookaround, backreferences or atomic groups.
They see the NFKC text, case-insensitively unless the rule says otherwise; `\\uXXXX` is accepted as
`\\x{XXXX}` so the common `[\\u4e00-\\u9fa5]` works; `\\d`, `\\w`, `\\s`, `\\b` are ASCII-only in RE2 (use
`\\p{Han}` or a range for Chinese) and `$` is the end of the message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import ahocorasick
import re2

from qunflow.errors import InvalidInput

Scope = Literal["group", "private", "any"]
SCOPES = ("group", "private", "any")
MAX_KEYWORD_CHARS = 200
MAX_REGEX_CHARS = 1000
# Characters from U+2E80 on (CJK radicals, kana, ideographs, Hangul syllables, full-width forms) are
# written without spaces between words, so they never count as part of an English word.
_NO_SPACE_SCRIPTS_FROM = "\u2e80"
_PY_UNICODE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})")


class RuleError(InvalidInput):
    """A rule that cannot be compiled; `field` and `index` point at the offending value in the rule."""

    def __init__(self, rule_id: str, field: str, message: str, *, index: int | None = None,
                 pattern: str | None = None) -> None:
        where = f"{field}[{index}]" if index is not None else field
        shown = f" {pattern!r}" if pattern is not None else ""
        super().__init__(f"rule {rule_id!r} {where}{shown}: {message}")
        self.rule_id, self.field, self.index, self.pattern, self.reason = rule_id, field, index, pattern, message


@dataclass(frozen=True)
class KeywordRule:
    """One rule. Higher `priority` is tried first; equal priorities keep the order given.

    `groups` / `tiers` restrict the rule (empty means every group / tier); `stop` means no rule after
    this one is reported when it matches; `actions` is opaque data for the automation engine.
    """

    id: str
    keywords: Sequence[str] = ()
    regexes: Sequence[str] = ()
    scope: Scope = "any"
    groups: Collection[str] = frozenset()
    tiers: Collection[str] = frozenset()
    whole_words: bool = False
    case_sensitive: bool = False
    priority: int = 0
    stop: bool = False
    actions: Sequence[Any] = ()

    def __post_init__(self) -> None:
        for name in ("keywords", "regexes", "actions"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise RuleError(self.id, name, "must be a list, not a single string")
            object.__setattr__(self, name, tuple(value))
        for name in ("groups", "tiers"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise RuleError(self.id, name, "must be a list, not a single string")
            object.__setattr__(self, name, frozenset(value))


@dataclass(frozen=True)
class Hit:
    """One keyword or regex of a rule found in a message; `text` is the matched part of the normalised text."""

    pattern: str
    text: str
    regex: bool = False


@dataclass(frozen=True)
class Match:
    rule: KeywordRule
    hits: tuple[Hit, ...] = field(default=())

    @property
    def rule_id(self) -> str:
        return self.rule.id


def normalize(text: str, case_sensitive: bool = False) -> str:
    """The form keywords and messages are compared in: NFKC, then case folding unless case-sensitive."""
    nfkc = unicodedata.normalize("NFKC", text)
    return nfkc if case_sensitive else nfkc.casefold()


def is_word_char(ch: str) -> bool:
    """A character that continues an English-like word (so a whole-word keyword must not touch it)."""
    return ch < _NO_SPACE_SCRIPTS_FROM and (ch.isalnum() or ch == "_")


def to_re2_syntax(pattern: str) -> str:
    r"""Accept Python/JavaScript `\uXXXX` escapes, which RE2 spells `\x{XXXX}`."""
    return _PY_UNICODE_ESCAPE.sub(r"\1\\x{\2}", pattern)


def _re2_options(case_sensitive: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False
    return options


def _explain_re2_error(pattern: str, detail: str) -> str:
    if any(op in pattern for op in ("(?=", "(?!", "(?<=", "(?<!")):
        return ("uses lookaround ((?=, (?!, (?<=, (?<!), which RE2 does not support (it keeps matching "
                "linear-time); rewrite it without lookaround")
    if re.search(r"\\[1-9kg]|\(\?P[=>]", pattern):
        return "uses a backreference (\\1, \\k<name>, (?P=name)), which RE2 does not support"
    if "(?>" in pattern or re.search(r"[*+?}]\+", pattern):
        return "uses an atomic group or possessive quantifier, which RE2 does not support"
    if "\\Z" in pattern:
        return "\\Z is not RE2 syntax; use \\z (or $) for the end of the message"
    return f"is not a valid RE2 regular expression ({detail})"


def compile_regex(rule_id: str, index: int, pattern: str, case_sensitive: bool) -> Any:
    """Compile one regex of a rule with RE2, or raise RuleError saying what to change."""
    if not pattern:
        raise RuleError(rule_id, "regexes", "is empty", index=index, pattern=pattern)
    if len(pattern) > MAX_REGEX_CHARS:
        raise RuleError(rule_id, "regexes", f"is longer than {MAX_REGEX_CHARS} characters", index=index,
                        pattern=pattern[:40] + "…")
    try:
        compiled = re2.compile(to_re2_syntax(pattern), _re2_options(case_sensitive))
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RuleError(rule_id, "regexes", _explain_re2_error(pattern, detail), index=index,
                        pattern=pattern) from None
    if compiled.search("") is not None:
        raise RuleError(rule_id, "regexes", "also matches an empty message, so it would fire on every "
                        "message; make it require at least one character", index=index, pattern=pattern)
    return compiled


def _check_rule(rule: KeywordRule) -> None:
    if not isinstance(rule.id, str) or not rule.id:
        raise RuleError(str(rule.id), "id", "a rule needs a non-empty id")
    if rule.scope not in SCOPES:
        raise RuleError(rule.id, "scope", f"is {rule.scope!r}; use group, private or any")
    if not rule.keywords and not rule.regexes:
        raise RuleError(rule.id, "keywords", "a rule needs at least one keyword or regex")
    for index, keyword in enumerate(rule.keywords):
        if not isinstance(keyword, str) or not normalize(keyword, rule.case_sensitive).strip():
            raise RuleError(rule.id, "keywords", "must be text with more than spaces", index=index,
                            pattern=str(keyword))
        if len(keyword) > MAX_KEYWORD_CHARS:
            raise RuleError(rule.id, "keywords", f"is longer than {MAX_KEYWORD_CHARS} characters", index=index,
                            pattern=keyword[:40] + "…")
    for index, pattern in enumerate(rule.regexes):
        if not isinstance(pattern, str):
            raise RuleError(rule.id, "regexes", "must be text", index=index, pattern=str(pattern))


@dataclass(frozen=True)
class _KeywordEntry:
    rule: int
    keyword: int
    check_left: bool
    check_right: bool


class _LiteralIndex:
    """All keywords of one case mode in one Aho-Corasick automaton."""

    def __init__(self) -> None:
        self._entries: dict[str, list[_KeywordEntry]] = {}

    def add(self, word: str, entry: _KeywordEntry) -> None:
        self._entries.setdefault(word, []).append(entry)

    def build(self) -> Any:
        if not self._entries:
            return None
        automaton = ahocorasick.Automaton()
        for word, entries in self._entries.items():
            plain = tuple((e.rule, e.keyword) for e in entries if not (e.check_left or e.check_right))
            bounded = tuple(e for e in entries if e.check_left or e.check_right)
            automaton.add_word(word, (len(word), plain, bounded))
        automaton.make_automaton()
        return automaton


def _scan_literals(automaton: Any, text: str, found: dict[int, set[int]]) -> None:
    for end, (length, plain, bounded) in automaton.iter(text):
        for rule, keyword in plain:
            found.setdefault(rule, set()).add(keyword)
        if bounded:
            start = end - length + 1
            left_ok = start == 0 or not is_word_char(text[start - 1])
            right_ok = end + 1 == len(text) or not is_word_char(text[end + 1])
            for entry in bounded:
                if (left_ok or not entry.check_left) and (right_ok or not entry.check_right):
                    found.setdefault(entry.rule, set()).add(entry.keyword)


class Matcher:
    """Compiled rules: built once, then only read by `match`."""

    def __init__(self, rules: Sequence[KeywordRule]) -> None:
        order = sorted(range(len(rules)), key=lambda i: (-rules[i].priority, i))
        self.rules: tuple[KeywordRule, ...] = tuple(rules[i] for i in order)
        self._words = [tuple(normalize(k, rule.case_sensitive) for k in rule.keywords) for rule in self.rules]
        literals = {False: _LiteralIndex(), True: _LiteralIndex()}
        regex_slots: dict[tuple[str, bool], int] = {}
        self._regexes: list[Any] = []
        self._regex_owners: list[list[tuple[int, int]]] = []
        prefilter = re2.Filter()
        for position, rule in enumerate(self.rules):
            for index, word in enumerate(self._words[position]):
                check = rule.whole_words
                literals[rule.case_sensitive].add(word, _KeywordEntry(
                    position, index, check and is_word_char(word[0]), check and is_word_char(word[-1])))
            for index, pattern in enumerate(rule.regexes):
                key = (pattern, rule.case_sensitive)
                if key not in regex_slots:
                    regex_slots[key] = len(self._regexes)
                    self._regexes.append(compile_regex(rule.id, index, pattern, rule.case_sensitive))
                    self._regex_owners.append([])
                    prefilter.Add(to_re2_syntax(pattern), _re2_options(rule.case_sensitive))
                self._regex_owners[regex_slots[key]].append((position, index))
        self._folded = literals[False].build()
        self._exact = literals[True].build()
        if self._regexes:
            prefilter.Compile()
            self._prefilter: Any = prefilter
        else:
            self._prefilter = None

    def match(self, text: str, scope: Literal["group", "private"] = "group", group: str | None = None,
              tier: str | None = None) -> list[Match]:
        """Rules the message triggers, in rule order, cut after the first matching rule with `stop`."""
        if scope not in ("group", "private"):
            raise InvalidInput(f"scope is {scope!r}; a message is posted in a group or private",
                               zh=f"scope 为 {scope!r}:消息只能发在群里(group)或私聊中(private)")
        nfkc = unicodedata.normalize("NFKC", text)
        keyword_hits: dict[int, set[int]] = {}
        if self._folded is not None:
            _scan_literals(self._folded, nfkc.casefold(), keyword_hits)
        if self._exact is not None:
            _scan_literals(self._exact, nfkc, keyword_hits)
        regex_hits: dict[int, dict[int, str]] = {}
        if self._prefilter is not None:
            for slot in self._prefilter.Match(nfkc) or ():
                found = self._regexes[slot].search(nfkc)
                if found is None:  # the prefilter only narrows; RE2 decides
                    continue
                for position, index in self._regex_owners[slot]:
                    regex_hits.setdefault(position, {})[index] = found.group(0)
        matches: list[Match] = []
        for position in sorted(keyword_hits.keys() | regex_hits.keys()):
            rule = self.rules[position]
            if not _applies(rule, scope, group, tier):
                continue
            hits = [Hit(rule.keywords[i], self._words[position][i], False)
                    for i in sorted(keyword_hits.get(position, ()))]
            hits += [Hit(rule.regexes[i], text_found, True)
                     for i, text_found in sorted(regex_hits.get(position, {}).items())]
            matches.append(Match(rule, tuple(hits)))
            if rule.stop:
                break
        return matches


def _applies(rule: KeywordRule, scope: str, group: str | None, tier: str | None) -> bool:
    if rule.scope != "any" and rule.scope != scope:
        return False
    if rule.groups and group not in rule.groups:
        return False
    return not (rule.tiers and tier not in rule.tiers)


def compile_rules(rules: Iterable[KeywordRule]) -> Matcher:
    """Check and compile rules; raises RuleError naming the rule and the field to fix."""
    rules = list(rules)
    seen: set[str] = set()
    for rule in rules:
        _check_rule(rule)
        if rule.id in seen:
            raise RuleError(rule.id, "id", "is used by two rules; rule ids must be unique")
        seen.add(rule.id)
    return Matcher(rules)
