"""Privacy rules as values (P8): what may reach a group or a staff alert, and how an erased member's
events are pseudonymised so the metrics stay the same. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qunflow.domain.templates import Template, TemplateError, render_template, template_variables

# Template variables filled from the member's private gate profile. They never go to a group (everyone
# reads it) or to a staff alert (a chat webhook, the inbox): alerts carry the member id and a console link.
PROFILE_VARIABLES = frozenset({"name"})


def without_profile(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of a template for a group or an alert: the profile fields taken out."""
    return {k: v for k, v in values.items() if k not in PROFILE_VARIABLES}


def profile_variables_in(template: Template) -> list[str]:
    """The profile variables a template reads (sorted; empty when it may go to a group or an alert)."""
    return sorted(template_variables(template) & PROFILE_VARIABLES)


def render_public(template: Template, values: Mapping[str, Any], lang: str) -> str:
    """Render a text for a group or a staff alert. A template that reads a profile field is refused
    (TemplateError), and the profile fields are not even among the values it is given."""
    found = profile_variables_in(template)
    if found:
        raise TemplateError(f"{', '.join(found)} is private profile data: it may not appear in a group "
                            "message or a staff alert (use member_id and console_link in alerts)",
                            variable=found[0])
    return render_template(template, without_profile(values), lang)


# --- erasure: the events kept for the metrics ---------------------------------------------------

# Event properties the product writes that say nothing about the person (the metrics read only `tier`).
# Everything else an erased member's events carried (gate answers, order references, free-form fields
# a shop sent) is dropped.
KEPT_PROPERTIES = frozenset({
    "tier", "attribution", "platform", "private", "task", "rule_set", "rule", "tag", "welcome_version",
    "variant", "experiment", "seconds_after_join", "latency_ms", "no_room", "coupon", "coupon_id", "purpose",
    "granted", "source", "placed_tier", "route",
})


@dataclass(frozen=True)
class Pseudonyms:
    """What an erased member's identifiers become: a random id nothing links back to the person."""

    member_id: str
    pseudonym: str
    visitor_id: str | None = None
    visitor_pseudonym: str | None = None
    platform_user_ids: tuple[str, ...] = ()

    def swap(self, text: str) -> str:
        """A key or event id with the member's ids in it, rewritten (welcome_dm:m_1 -> welcome_dm:anon_…)."""
        out = text.replace(self.member_id, self.pseudonym)
        for user_id in self.platform_user_ids:
            if len(user_id) >= 4:  # a very short id would hit unrelated text
                out = out.replace(user_id, self.pseudonym)
        if self.visitor_id and self.visitor_pseudonym:
            out = out.replace(self.visitor_id, self.visitor_pseudonym)
        return out


def kept_properties(properties: Any) -> dict[str, Any] | None:
    """The properties an erased member's event keeps (None when nothing is left)."""
    if isinstance(properties, str):
        try:
            properties = json.loads(properties)
        except ValueError:
            return None
    if not isinstance(properties, Mapping):
        return None
    kept = {k: v for k, v in properties.items() if k in KEPT_PROPERTIES or k.startswith("utm_")}
    return kept or None


def pseudonymise_event(row: Mapping[str, Any], names: Pseudonyms) -> dict[str, Any]:
    """One event as it is kept after the erasure (the columns that change, with their new values).

    The member's own events (and the landing views of their visitor id) get the pseudonyms and only the
    kept properties; another member's event that names them as referrer gets the pseudonym as referrer_id.
    Consistent pseudonyms keep every metric of METRICS.md (M1-M9) the same: they count ids, times,
    types, amounts and the tier, and never read who a member is.
    """
    changes: dict[str, Any] = {}
    own = row.get("member_id") == names.member_id or (
        names.visitor_id is not None and row.get("visitor_id") == names.visitor_id)
    if row.get("referrer_id") == names.member_id:
        changes["referrer_id"] = names.pseudonym
    if not own:
        return changes
    if row.get("member_id") == names.member_id:
        changes["member_id"] = names.pseudonym
    if names.visitor_id is not None and row.get("visitor_id") == names.visitor_id:
        changes["visitor_id"] = names.visitor_pseudonym
    changes["event_id"] = names.swap(str(row["event_id"]))
    changes["properties"] = kept_properties(row.get("properties"))
    return changes


def scrub(text: str, needles: Iterable[str], mask: str = "***") -> str:
    """The text with every needle (a name, a phone number) masked."""
    for needle in sorted({n for n in needles if n}, key=len, reverse=True):
        text = text.replace(needle, mask)
    return text


# Profile fields that name or reach the person; free text elsewhere is masked where they appear.
IDENTIFYING_FIELDS = ("name", "phone", "mobile", "email", "wechat", "wechat_id")


def needles_of(profile: Mapping[str, Any], display_names: Iterable[str]) -> list[str]:
    """The strings that identify the person in free text: their name, phone or e-mail from the profile and
    their platform display names (two characters at least: 李 alone would mask half a chat)."""
    values = [str(profile[k]).strip() for k in IDENTIFYING_FIELDS if isinstance(profile.get(k), str | int)]
    values += [name.strip() for name in display_names]
    return sorted({v for v in values if len(v) >= 2}, key=len, reverse=True)


# --- a blind index of names: search by part of a name without decrypting profiles ---------------------------

NAME_INDEXED = 16  # a name this long (spaces taken out) or shorter: every part of it is indexed
NAME_LONG_PART = 4  # a longer name: its prefixes, and every part up to this many characters
NAME_FRAGMENTS_MAX = 160


def name_text(name: str) -> str:
    """A name or a query as the index sees it: NFKC, case-folded, without whitespace."""
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


def _wide(char: str) -> bool:
    """A CJK (or other wide) character: one of them is a meaningful search (王), one Latin letter is not."""
    return ord(char) >= 0x2E80


def name_fragments(name: str) -> list[str]:
    """The parts of a name a search may type, each to be stored as a keyed hash (never in clear).

    A name of up to NAME_INDEXED characters: every substring, except single Latin letters or digits. A
    longer one: its prefixes and its substrings up to NAME_LONG_PART characters. At most NAME_FRAGMENTS_MAX,
    shortest first (a query longer than any stored part of a long name does not find it)."""
    text = name_text(name)
    if not text:
        return []
    longest = len(text) if len(text) <= NAME_INDEXED else NAME_LONG_PART
    found = {text[i:i + n] for n in range(1, longest + 1) for i in range(len(text) - n + 1)}
    if len(text) > NAME_INDEXED:
        found |= {text[:n] for n in range(NAME_LONG_PART + 1, len(text) + 1)}
    parts = sorted((f for f in found if len(f) > 1 or _wide(f)), key=lambda f: (len(f), f))
    return parts[:NAME_FRAGMENTS_MAX]
