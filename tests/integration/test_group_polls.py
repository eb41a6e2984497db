"""Group polls on the sandbox platform: posted through the outbox, voted by replying with a number, one vote
per member, results, poll_vote counted as engagement; bad input refused with what to fix."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from qunflow.errors import Conflict, InvalidInput, NotFound
from qunflow.services.group_polls import close_poll, list_polls, poll_results, post_poll
from qunflow.services.levels import compute_levels
from qunflow.store.tables import deliveries, events, groups, member_levels
from qunflow.workspace import Workspace
from tests.integration.test_automation import Clock, join, local
from tests.integration.test_join_flow import setup_community


def chat_of(ws: Workspace, group_key: str) -> str:
    with ws.engine.connect() as conn:
        return str(conn.execute(select(groups.c.external_id).where(groups.c.key == group_key)).scalar_one())


@pytest.fixture
def community(workspace: Workspace) -> tuple[Workspace, Clock, list[tuple[str, str]]]:
    clock = Clock(local("2026-03-02T09:00:00"))
    workspace.clock = clock
    setup_community(workspace, core_capacity=10)
    people = [(join(workspace, f"v{i}", f"u{i}"), f"u{i}") for i in range(4)]
    return workspace, clock, people


def test_a_poll_is_posted_and_replies_with_a_number_are_votes(community) -> None:  # type: ignore[no-untyped-def]
    ws, clock, people = community
    done = post_poll(ws, "core-1", "Which day suits you?", ["sat=Saturday", "sun=Sunday", "none=Neither"],
                     key="day", language="en")
    assert done["posted"] and done["key"] == "day"
    chat = chat_of(ws, "core-1")
    [posted] = [m for m in ws.sandbox.messages(chat_id=chat) if m["client_key"] == "group_poll:day"]
    assert posted["text"] == "Which day suits you?\n1. Saturday\n2. Sunday\n3. Neither\n" \
                             "Reply with the number to vote (one vote each)"
    with ws.engine.connect() as conn:
        assert conn.execute(select(deliveries.c.status).where(deliveries.c.idempotency_key == "group_poll:day")) \
            .scalar() == "sent"

    (m0, u0), (m1, u1), (m2, u2), (_m3, u3) = people
    ws.sandbox.say(u0, "1", chat)
    ws.sandbox.say(u1, " ２ ", chat)  # full-width digits from a Chinese keyboard
    ws.sandbox.say(u2, "sun", chat)
    ws.sandbox.say(u0, "2", chat)  # a second reply: the first vote stands
    ws.sandbox.say(u3, "I like 1 and 2", chat)  # not a vote
    ws.sandbox.say(u3, "7", chat)  # no such option
    result = poll_results(ws, "day")
    assert [(o["key"], o["votes"]) for o in result["options"]] == [("sat", 1), ("sun", 2), ("none", 0)]
    assert result["total"] == 3 and result["open"] and result["question"] == "Which day suits you?"
    with ws.engine.connect() as conn:
        votes = conn.execute(select(events.c.member_id, events.c.group_key, events.c.properties)
                             .where(events.c.type == "poll_vote")).all()
    assert sorted(v.member_id for v in votes) == sorted([m0, m1, m2])
    assert {v.group_key for v in votes} == {"core-1"}
    assert {v.properties["poll"] for v in votes} == {"day"}

    clock.now += timedelta(hours=73)  # past the default 72 hours: replies no longer count
    ws.sandbox.say(u3, "3", chat)
    assert poll_results(ws, "day")["total"] == 3 and not poll_results(ws, "day")["open"]


def test_votes_count_as_engagement(community) -> None:  # type: ignore[no-untyped-def]
    """A vote is a message and a poll_vote: its sender scores above a member who only chatted."""
    ws, _clock, people = community
    assert "poll_vote" in ws.settings.engagement_types
    chat = chat_of(ws, "core-1")
    post_poll(ws, "core-1", "Coffee or tea?", ["c=Coffee", "t=Tea"], key="drink")
    ws.sandbox.say(people[0][1], "1", chat)
    ws.sandbox.say(people[1][1], "hello", chat)
    compute_levels(ws, ws.clock().date())
    with ws.engine.connect() as conn:
        scores = dict(conn.execute(select(member_levels.c.member_id, member_levels.c.score)).all())
    assert scores[people[0][0]] == 2 * scores[people[1][0]] > 0


def test_the_newest_open_poll_of_the_group_takes_the_reply_and_close_stops_it(community) -> None:  # type: ignore[no-untyped-def]
    ws, clock, people = community
    chat = chat_of(ws, "core-1")
    post_poll(ws, "core-1", "First?", ["a=A", "b=B"], key="first")
    clock.now += timedelta(minutes=1)
    post_poll(ws, "core-1", "Second?", ["x=X", "y=Y"], key="second")
    ws.sandbox.say(people[0][1], "2", chat)
    assert poll_results(ws, "second")["total"] == 1 and poll_results(ws, "first")["total"] == 0
    close_poll(ws, "second")
    ws.sandbox.say(people[1][1], "1", chat)
    assert poll_results(ws, "first")["options"][0]["votes"] == 1 and poll_results(ws, "second")["total"] == 1
    assert [p["key"] for p in list_polls(ws)] == ["second", "first"]


def test_bad_polls_are_refused_with_what_to_fix(community) -> None:  # type: ignore[no-untyped-def]
    ws, _clock, _people = community
    with pytest.raises(InvalidInput, match="2 to 9 options"):
        post_poll(ws, "core-1", "Q?", ["a=A"])
    with pytest.raises(InvalidInput, match="must be key=label"):
        post_poll(ws, "core-1", "Q?", ["a=A", "Beta"])
    with pytest.raises(InvalidInput, match="must differ"):
        post_poll(ws, "core-1", "Q?", ["a=A", "a=B"])
    with pytest.raises(InvalidInput, match="question"):
        post_poll(ws, "core-1", "  ", ["a=A", "b=B"])
    with pytest.raises(NotFound, match="no group 'nope'"):
        post_poll(ws, "nope", "Q?", ["a=A", "b=B"])
    post_poll(ws, "core-1", "Q?", ["a=A", "b=B"], key="once")
    with pytest.raises(Conflict):
        post_poll(ws, "core-1", "Q?", ["a=A", "b=B"], key="once")
    with pytest.raises(NotFound):
        poll_results(ws, "missing")
