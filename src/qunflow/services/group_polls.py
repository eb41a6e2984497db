"""Group polls (issue 13, docs/polls.md): post a question to a group through the outbox, count the replies.

A vote is a group message that is just an option's number (or key) while the group's newest open poll
runs; it is stored once per member and poll (poll_votes, poll `group:<key>`; a second reply changes
nothing) and recorded as a `poll_vote` event (an engagement event, METRICS.md).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from qunflow.domain.entry import check_key
from qunflow.domain.events import Event
from qunflow.domain.group_polls import Option, check_question, could_be_vote, parse_options, post_text, read_reply
from qunflow.engine import outbox
from qunflow.errors import Conflict, InvalidInput, NotFound
from qunflow.store.eventlog import append_events
from qunflow.store.plain import insert_if_new
from qunflow.store.tables import group_polls, groups, poll_votes
from qunflow.workspace import Workspace

DEFAULT_HOURS = 72
VOTE_PREFIX = "group:"  # poll_votes.poll of a group poll; a Day-1 task's poll is its task key


@dataclass(frozen=True)
class GroupPoll:
    key: str
    group_key: str
    question: str
    options: list[Option]
    posted_at: datetime
    closes_at: datetime

    def open(self, now: datetime) -> bool:
        return self.posted_at <= now < self.closes_at


def _poll(row: Any) -> GroupPoll:
    return GroupPoll(row.key, row.group_key, row.question, [Option(o["key"], o["label"]) for o in row.options],
                     row.posted_at, row.closes_at)


def post_poll(ws: Workspace, group_key: str, question: str, options: list[str], *, key: str | None = None,
              hours: int = DEFAULT_HOURS, language: str = "zh", actor: str = "cli") -> dict[str, Any]:
    """Post a poll to a managed group (through the outbox, so it is sent once, retried, dead-lettered)."""
    parsed = parse_options(options)
    question = check_question(question)
    if not 1 <= hours <= 24 * 30:
        raise InvalidInput("hours must be 1 to 720", zh="小时数须为 1 到 720")
    key = check_key("poll", key) if key else f"p{secrets.token_hex(3)}"
    if len(key) > 32:
        raise InvalidInput(f"poll key {key!r}: at most 32 characters", zh=f"投票标识 {key!r}：最多 32 个字符")
    now = ws.clock()
    with ws.engine.begin() as conn:
        group = conn.execute(select(groups.c.key, groups.c.platform, groups.c.external_id, groups.c.archived_at)
                             .where(groups.c.key == group_key)).first()
        if group is None or group.archived_at is not None:
            raise NotFound(f"there is no group {group_key!r} (see `qunflow group list`)",
                           zh=f"没有群 {group_key!r}（见 `qunflow group list`）")
        if conn.execute(select(group_polls.c.id).where(group_polls.c.key == key)).first() is not None:
            raise Conflict(f"a poll {key!r} exists already", zh=f"投票 {key!r} 已存在")
        conn.execute(insert(group_polls).values(
            key=key, group_key=group_key, question=question, options=[o.__dict__ for o in parsed], posted_at=now,
            closes_at=now + timedelta(hours=hours), created_by=actor[:64]))
        outbox.record(ws, conn, outbox.Message(
            key=f"group_poll:{key}", kind="group_poll", platform=group.platform, target=group.external_id,
            text=post_text(question, parsed, language), private=False))
    sent = outbox.deliver(ws, [f"group_poll:{key}"])
    return {"key": key, "group": group_key, "posted": sent.sent == 1, "closes_at": now + timedelta(hours=hours)}


def on_message(ws: Workspace, item: Any) -> None:
    """Inbound handler: a reply with an option's number in a group votes in its newest open poll."""
    from qunflow.connectors.base import MessagePosted
    from qunflow.services.join import group_row, member_of_user

    assert isinstance(item, MessagePosted)
    text = item.text.strip()
    if item.group_id is None or not could_be_vote(text):
        return  # most group messages: no database read
    now = ws.clock()
    with ws.engine.connect() as conn:
        group = group_row(conn, item.platform, item.group_id)
        if group is None:
            return
        row = conn.execute(select(group_polls).where(group_polls.c.group_key == group.key,
                                                     group_polls.c.posted_at <= now, group_polls.c.closes_at > now)
                           .order_by(group_polls.c.posted_at.desc(), group_polls.c.id.desc()).limit(1)).first()
        if row is None:
            return
        poll = _poll(row)
        option = read_reply(text, poll.options)
        member_id = member_of_user(conn, item.platform, item.user_id) if option else None
    if option is None or member_id is None:
        return
    vote(ws, poll, member_id, option, now)


def vote(ws: Workspace, poll: GroupPoll, member_id: str, option: str, at: datetime) -> bool:
    """Store the member's vote (the first one stands) and record `poll_vote`; False when they voted before."""
    with ws.engine.begin() as conn:
        if not insert_if_new(conn, poll_votes, {"member_id": member_id, "poll": VOTE_PREFIX + poll.key,
                                                "option": option, "voted_at": at}):
            return False
        append_events(conn, [Event(event_id=f"pv-{member_id}-{VOTE_PREFIX}{poll.key}", type="poll_vote",
                                   ts=at.replace(tzinfo=UTC), member_id=member_id, group=poll.group_key,
                                   properties={"poll": poll.key, "option": option, "source": "group"})])
    return True


def poll_results(ws: Workspace, key: str) -> dict[str, Any]:
    """The question, each option's votes (in the post's order, 0 for none) and the total."""
    with ws.engine.connect() as conn:
        row = conn.execute(select(group_polls).where(group_polls.c.key == key)).first()
        if row is None:
            raise NotFound(f"there is no group poll {key!r} (see `qunflow poll list`)",
                           zh=f"没有群投票 {key!r}（见 `qunflow poll list`）")
        counts: dict[str, int] = dict(conn.execute(select(poll_votes.c.option, func.count())
                                                   .where(poll_votes.c.poll == VOTE_PREFIX + key)
                                                   .group_by(poll_votes.c.option)).all())  # type: ignore[arg-type]
    poll = _poll(row)
    options = [{"number": n, "key": o.key, "label": o.label, "votes": int(counts.get(o.key, 0))}
               for n, o in enumerate(poll.options, 1)]
    return {"key": poll.key, "group": poll.group_key, "question": poll.question, "options": options,
            "total": sum(o["votes"] for o in options), "posted_at": poll.posted_at, "closes_at": poll.closes_at,
            "open": poll.open(ws.clock())}


def list_polls(ws: Workspace, limit: int = 100) -> list[dict[str, Any]]:
    """The newest polls first, with their results."""
    with ws.engine.connect() as conn:
        keys = list(conn.execute(select(group_polls.c.key).order_by(group_polls.c.posted_at.desc(),
                                                                    group_polls.c.id.desc()).limit(limit)).scalars())
    return [poll_results(ws, key) for key in keys]


def close_poll(ws: Workspace, key: str) -> None:
    """Stop counting replies now."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        changed = conn.execute(update(group_polls).where(group_polls.c.key == key, group_polls.c.closes_at > now)
                               .values(closes_at=now)).rowcount
        if not changed and conn.execute(select(group_polls.c.id).where(group_polls.c.key == key)).first() is None:
            raise NotFound(f"there is no group poll {key!r}", zh=f"没有群投票 {key!r}")
