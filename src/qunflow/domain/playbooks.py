"""Playbooks as data (issue 4): a trigger, steps and an exit goal, read from YAML. No I/O.

A file holds one or more YAML documents (`---`), each a playbook:

    kind: playbook
    key: s2_warmup
    title: {zh: 新人 7 天暖场, en: 7-day warm-up}
    trigger: {on: member_joined, tiers: [newbie]}
    exit_when: {has_ordered: true}
    marketing: true            # quiet hours and the daily cap apply to its messages
    templates:
      day2: {zh: "…{{ name }}…", en: "…"}
    steps:
      - send_dm: day2
      - wait: {days: 1, at: "10:00"}
      - id: vip_check
        branch: {if: {tag: vip}, goto: vip_offer}
      ...

Every problem is reported as `file:line: field: message`; `load_playbooks` raises `PlaybookErrors`
holding all of them, so a bad file is refused whole.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

TRIGGERS = ("member_joined", "tag_added", "task_completed", "order_placed", "inactive", "event_signup", "schedule",
            "event_scheduled", "level_changed")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_STEPS = 200
# Variables the engine gives every template; a template naming anything else is refused at apply time.
TEMPLATE_VARIABLES = frozenset({"name", "advisor", "coupon_code", "coupon_value", "link", "group", "tier",
                                "member_link", "poster_link", "member_id", "console_link",
                                # S4 events (services/meetups.py): empty outside an event's playbook
                                "event_title", "event_time", "event_link", "checkin_link", "checkin_keyword"})
# Documents of these kinds may share a file with playbooks; their own parsers read them (keyword_files).
OTHER_KINDS = ("keyword_rules", "rewards", "welcome", "experiment", "tier_rules")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _key(value: str) -> str:
    if not KEY.fullmatch(value):
        raise ValueError("use lower-case letters, digits and '_' (start with a letter, at most 64)")
    return value


def _hhmm(value: str | None) -> str | None:
    if value is not None and not HHMM.fullmatch(value):
        raise ValueError("a time of day like 09:30 (24-hour clock)")
    return value


class Text(Strict):
    """A user-facing text in both languages."""

    zh: str = Field(min_length=1, max_length=4000)
    en: str = Field(min_length=1, max_length=4000)


class Schedule(Strict):
    """Weekly on some weekdays, or on given dates; at a local time of day."""

    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = []
    dates: list[date] = []
    at: str

    _at = field_validator("at")(_hhmm)

    @model_validator(mode="after")
    def _when(self) -> Schedule:
        if bool(self.weekdays) == bool(self.dates):
            raise ValueError("a schedule has weekdays or dates (one of them)")
        return self


class Trigger(Strict):
    on: Literal["member_joined", "tag_added", "task_completed", "order_placed", "inactive", "event_signup",
                "schedule", "event_scheduled", "level_changed"]
    tiers: list[str] = []  # only members (or, for a schedule, groups) of these tiers
    entry_points: list[str] = []  # member_joined: only joins through these entry points
    tag: str | None = None  # tag_added
    task: str | None = None  # task_completed
    days: int | None = Field(None, ge=1, le=365)  # inactive: no engagement for this many days
    event: str | None = None  # event_signup, event_scheduled: only this event's key (default: every event)
    schedule: Schedule | None = None  # schedule: when (workspace time zone); posts to the tiers' groups
    # level_changed: only moves to / from these engagement levels (domain/engagement.py; default: any)
    to: list[Literal["new", "active", "core", "slipping", "dormant"]] = []
    from_: list[Literal["new", "active", "core", "slipping", "dormant"]] = Field([], alias="from")

    @model_validator(mode="after")
    def _needs(self) -> Trigger:
        needed = {"tag_added": "tag", "task_completed": "task", "inactive": "days",
                  "schedule": "schedule"}.get(self.on)
        if needed and getattr(self, needed) is None:
            raise ValueError(f"a {self.on} trigger needs {needed}")
        if self.entry_points and self.on != "member_joined":
            raise ValueError("entry_points applies to member_joined only")
        if self.event is not None and self.on not in ("event_signup", "event_scheduled"):
            raise ValueError("event applies to event_signup and event_scheduled only")
        if (self.to or self.from_) and self.on != "level_changed":
            raise ValueError("to and from apply to level_changed only")
        return self


class Condition(Strict):
    """Exactly one test on the member."""

    tag: str | None = None
    task_done: str | None = None
    has_ordered: bool | None = None
    profile: dict[str, str] | None = None  # every field equals the value
    variant: dict[str, str] | None = None  # {experiment: variant}
    attended: bool | None = None  # the member checked in at the enrollment's event (S4)

    @model_validator(mode="after")
    def _one(self) -> Condition:
        if len(self.model_fields_set) != 1:
            raise ValueError("a condition is exactly one of tag, task_done, has_ordered, profile, variant, attended")
        return self


class Offset(Strict):
    days: int = Field(0, ge=0, le=365)
    hours: int = Field(0, ge=0, le=24 * 365)
    minutes: int = Field(0, ge=0, le=60 * 24 * 365)

    @property
    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes)


class Wait(Strict):
    """One of: a duration (days/hours/minutes); `days` then the local time `at` (day 0 = today);
    `day` N of the enrollment (day 0 = the local day it started) at `at`; `until` a local moment; or, in
    an event's playbook (S4), `before_event` its start or `after_event` its end by an offset.
    A moment already past does not wait."""

    days: int = Field(0, ge=0, le=365)
    hours: int = Field(0, ge=0, le=24 * 365)
    minutes: int = Field(0, ge=0, le=60 * 24 * 365)
    day: int | None = Field(None, ge=0, le=365)
    at: str | None = None
    until: datetime | None = None
    before_event: Offset | None = None
    after_event: Offset | None = None
    late: Literal["send", "skip"] = "send"  # reached after its moment: go on, or skip the sends it times

    _at = field_validator("at")(_hhmm)

    @property
    def on_event(self) -> bool:
        return self.before_event is not None or self.after_event is not None

    @model_validator(mode="after")
    def _some(self) -> Wait:
        duration = bool(self.days or self.hours or self.minutes)
        if self.on_event:
            if len(self.model_fields_set - {"late"}) != 1:
                raise ValueError("before_event and after_event stand alone (with late: send|skip)")
            return self
        if "late" in self.model_fields_set:
            raise ValueError("late applies to before_event and after_event waits")
        if self.until is not None:
            if duration or self.day is not None or self.at is not None:
                raise ValueError("until stands alone")
            if self.until.tzinfo is not None:
                raise ValueError("until is a local time in the workspace time zone, without an offset")
            return self
        if self.day is not None and (duration or self.at is None):
            raise ValueError("day needs at, and no days/hours/minutes")
        if self.at is None and not duration:
            raise ValueError("wait for days, hours or minutes, until a time of day (at), or until a moment")
        if self.at is not None and (self.hours or self.minutes):
            raise ValueError("with at, wait counts whole days only")
        return self


class Coupon(Strict):
    name: str = Field(min_length=1, max_length=64)
    value: float = Field(gt=0, le=100000)
    valid_days: int = Field(7, ge=1, le=365)


class AdvisorTask(Strict):
    title: Text
    due_hours: int = Field(24, ge=0, le=24 * 90)


class Branch(Strict):
    if_: Condition = Field(alias="if")
    goto: str
    else_goto: str | None = None


ACTIONS = ("wait", "send_dm", "post_group", "assign_task", "issue_coupon", "add_tag", "remove_tag", "move_tier",
           "move_group", "advisor_task", "notify_staff", "branch", "exit")
SENDS = ("send_dm", "post_group", "notify_staff")  # the steps that use a template


class Step(Strict):
    """One step: an optional `id` and exactly one action."""

    id: str | None = None
    wait: Wait | None = None
    send_dm: str | None = None  # template name
    post_group: str | None = None  # template name, to the member's current group (or the trigger's group)
    assign_task: str | None = None  # task key
    issue_coupon: Coupon | None = None
    add_tag: str | None = None
    remove_tag: str | None = None
    move_tier: str | None = None
    move_group: str | None = None
    advisor_task: AdvisorTask | None = None
    notify_staff: str | None = None  # template name, to the console inbox and the staff webhook
    branch: Branch | None = None
    exit: bool | None = None

    _id = field_validator("id")(lambda v: v if v is None else _key(v))

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        chosen = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"a step has exactly one of {', '.join(ACTIONS)}; got {', '.join(chosen) or 'none'}")
        return self

    @property
    def action(self) -> str:
        return next(name for name in ACTIONS if getattr(self, name) is not None)


class Playbook(Strict):
    kind: Literal["playbook"]
    key: str
    title: Text
    trigger: Trigger
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    exit_when: Condition | None = None
    marketing: bool = True
    enabled: bool = True
    templates: dict[str, Text] = {}

    _key = field_validator("key")(_key)

    def reference_problems(self) -> list[tuple[tuple[Any, ...], str]]:
        """(where, what) for step ids used twice, branches to no step, and templates not defined."""
        ids = [s.id for s in self.steps if s.id]
        out: list[tuple[tuple[Any, ...], str]] = []
        for i, step in enumerate(self.steps):
            if step.id and ids.count(step.id) > 1:
                out.append((("steps", i, "id"), f"step id {step.id!r} is used more than once"))
            if step.branch:
                for name, target in (("goto", step.branch.goto), ("else_goto", step.branch.else_goto)):
                    if target is not None and target not in ids:
                        out.append((("steps", i, "branch", name), f"{target!r} is no step id in this playbook"))
            for action in SENDS:
                name = getattr(step, action)
                if name is not None and name not in self.templates:
                    out.append((("steps", i, action), f"template {name!r} is not defined under templates"))
                elif name is not None and action != "send_dm":
                    out.extend((("steps", i, action), message) for message in self._public_problems(name))
        return out

    def _public_problems(self, name: str) -> list[str]:
        """A template posted to a group or sent as a staff alert may not read a private profile field."""
        from qunflow.domain.privacy import profile_variables_in
        from qunflow.domain.templates import TemplateError

        body = self.templates[name]
        try:
            found = profile_variables_in({"zh": body.zh, "en": body.en})
        except TemplateError:  # a syntax error: template_problems reports it
            return []
        return [f"template {name!r} uses {', '.join(found)}, private profile data, in a group post or a staff "
                "alert; alerts name the member by {{ member_id }} and {{ console_link }}"] if found else []

    def step_index(self, step_id: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.id == step_id)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}" if self.field else \
            f"{self.file}:{self.line}: {self.message}"


class PlaybookErrors(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Source:
    """A parsed playbook with the text it came from (versions keep the text) and its digest."""

    playbook: Playbook
    text: str
    file: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def _line_of(node: Any, loc: tuple[Any, ...]) -> int:
    """The 0-based line of the deepest part of `loc` found in the ruamel tree."""
    line = getattr(getattr(node, "lc", None), "line", 0) or 0
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(part, int) and isinstance(node, list):
                line = lc.item(part)[0] if lc else line
                node = node[part]
            elif isinstance(node, dict) and part in node:
                line = lc.key(part)[0] if lc else line
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError):
            break
    return int(line)


M = TypeVar("M", bound=BaseModel)  # a document kind's model (parse_kind)


def _documents(text: str, file: str) -> list[tuple[Any, str, int]]:
    """(tree, the document's own text, first line) per YAML document."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        trees = [tree for tree in yaml.load_all(text) if tree is not None]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise PlaybookErrors([Problem(file, (mark.line + 1) if mark else 1, "",
                                      f"not valid YAML: {exc.problem or exc.context}")]) from None
    except YAMLError as exc:
        raise PlaybookErrors([Problem(file, 1, "", f"not valid YAML: {exc}")]) from None
    lines = text.splitlines(keepends=True)
    starts = [getattr(getattr(t, "lc", None), "line", 0) or 0 for t in trees]
    out = []
    for i, tree in enumerate(trees):
        end = starts[i + 1] if i + 1 < len(trees) else len(lines)
        chunk = "".join(lines[starts[i]:end])
        out.append((tree, re.sub(r"(?m)^---\s*\Z", "", chunk.rstrip()) + "\n", starts[i]))
    return out


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")


def validation_problems(exc: ValidationError, tree: Any, file: str,
                        loc_of: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None) -> list[Problem]:
    """A YAML document's pydantic errors as Problems at their line and field. `loc_of` trims what pydantic
    adds to a location (default: its validator names, `function-...`)."""
    trim = loc_of or (lambda loc: tuple(p for p in loc if not str(p).startswith("function-")))
    problems = []
    for error in exc.errors():
        loc = trim(tuple(error["loc"]))
        problems.append(Problem(file, _line_of(tree, loc) + 1, _field(loc), error["msg"].removeprefix("Value error, ")))
    return problems


def parse_kind(text: str, file: str, kind: str, model: type[M],
               check: Callable[[M], list[tuple[tuple[Any, ...], str]]], what: str | None,
               loc_of: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None) -> list[tuple[M, str]]:
    """Every `kind: <kind>` document of one YAML text as (its model, its own text), or PlaybookErrors naming
    each problem's line and field: what the model refuses, what `check` finds (location, message) and, when
    `what` names the document, a key defined twice. The one loop behind each document kind's parser."""
    problems: list[Problem] = []
    found: list[tuple[M, str]] = []
    for tree, chunk, _first in _documents(text, file):
        if not (isinstance(tree, dict) and tree.get("kind") == kind):
            continue
        try:
            doc = model.model_validate(tree)
        except ValidationError as exc:
            problems += validation_problems(exc, tree, file, loc_of)
            continue
        own = check(doc)
        problems.extend(Problem(file, _line_of(tree, loc) + 1, _field(loc), message) for loc, message in own)
        if not own:
            found.append((doc, chunk))
    if what is not None:
        keys = [getattr(doc, "key") for doc, _ in found]  # noqa: B009 - every document model has a key
        for key in sorted({k for k in keys if keys.count(k) > 1}):
            problems.append(Problem(file, 1, "key", f"{what} {key!r} is defined twice"))
    if problems:
        raise PlaybookErrors(problems)
    return found


def parse_playbooks(text: str, file: str = "<text>",
                    variables: frozenset[str] = TEMPLATE_VARIABLES) -> list[Source]:
    """Every playbook in one YAML text, or PlaybookErrors naming each problem's file, line and field."""
    problems: list[Problem] = []
    sources: list[Source] = []
    for tree, chunk, first in _documents(text, file):
        if not isinstance(tree, dict):
            problems.append(Problem(file, first + 1, "", "a playbook is a mapping (key: value lines)"))
            continue
        if tree.get("kind") in OTHER_KINDS:
            continue
        try:
            playbook = Playbook.model_validate(tree)
        except ValidationError as exc:
            problems += validation_problems(exc, tree, file, lambda loc: tuple(p for p in loc if p != "if_"))
            continue
        for loc, message in playbook.reference_problems():
            problems.append(Problem(file, _line_of(tree, loc) + 1, _field(loc), message))
        for name, body in playbook.templates.items():
            for lang in ("zh", "en"):
                for message in template_problems(getattr(body, lang), variables):
                    loc = ("templates", name, lang)
                    problems.append(Problem(file, _line_of(tree, loc) + 1, _field(loc), message))
        if not problems:
            sources.append(Source(playbook, chunk, file))
    keys = [s.playbook.key for s in sources]
    for source in sources:
        if keys.count(source.playbook.key) > 1:
            problems.append(Problem(file, 1, "key", f"playbook {source.playbook.key!r} is defined twice"))
            break
    if problems:
        raise PlaybookErrors(problems)
    return sources


def template_problems(text: str, variables: frozenset[str]) -> list[str]:
    """Syntax errors and unknown variables of one template (domain.templates renders it in a sandbox)."""
    from qunflow.domain.templates import TemplateError, check_template

    try:
        check_template(text, variables)
    except TemplateError as exc:
        return [str(exc)]
    return []


# --- time arithmetic for waits and schedules (workspace time zone), pure ---

def wait_until(wait: Wait, now: datetime, zone: ZoneInfo, started: datetime | None = None,
               event: tuple[datetime, datetime] | None = None) -> datetime:
    """When a wait that starts at `now` (naive UTC) ends, as naive UTC. `started`: the enrollment's start;
    `event`: the (start, end) of the enrollment's event, naive UTC (a wait on the event needs it)."""
    if wait.on_event:
        if event is None:
            raise ValueError("before_event/after_event wait in a playbook that runs for no event")
        if wait.before_event is not None:
            return max(now, event[0] - wait.before_event.delta)
        assert wait.after_event is not None
        return max(now, event[1] + wait.after_event.delta)
    if wait.until is not None:
        return max(now, wait.until.replace(tzinfo=zone).astimezone(ZoneInfo("UTC")).replace(tzinfo=None))
    if wait.at is None:
        return now + timedelta(days=wait.days, hours=wait.hours, minutes=wait.minutes)
    hour, minute = map(int, wait.at.split(":"))
    if wait.day is not None:
        first = (started or now).replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).date()
        return max(now, _local(first + timedelta(days=wait.day), time(hour, minute), zone))
    local_now = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
    day = local_now.date() + timedelta(days=wait.days)
    target = _local(day, time(hour, minute), zone)
    if target <= now:
        target = _local(day + timedelta(days=1), time(hour, minute), zone)
    return target


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, zone).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def next_occurrence(schedule: Schedule, after: datetime, zone: ZoneInfo) -> datetime:
    """The first scheduled moment strictly after `after` (naive UTC), as naive UTC."""
    hour, minute = map(int, schedule.at.split(":"))
    if schedule.dates:
        moments = sorted(_local(d, time(hour, minute), zone) for d in schedule.dates)
        return next((m for m in moments if m > after), datetime.max)
    local = after.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).date()
    for offset in range(8):
        day = local + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] in schedule.weekdays:
            moment = _local(day, time(hour, minute), zone)
            if moment > after:
                return moment
    raise AssertionError("a weekly schedule recurs within 8 days")


def in_quiet_hours(moment: datetime, start: str, end: str, zone: ZoneInfo) -> datetime | None:
    """If `moment` (naive UTC) falls in the quiet hours [start, end) local, the end of them; else None."""
    local = moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
    s, e = (time.fromisoformat(t) for t in (start, end))
    now_t = local.time().replace(tzinfo=None)
    if s == e:
        return None
    if s < e:
        quiet = s <= now_t < e
        end_day = local.date()
    else:  # over midnight, e.g. 22:00-08:00
        quiet = now_t >= s or now_t < e
        end_day = local.date() + timedelta(days=1) if now_t >= s else local.date()
    return _local(end_day, e, zone) if quiet else None
