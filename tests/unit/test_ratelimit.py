"""Send limits: token buckets for the bot and each chat, with the platforms' defaults and overrides."""

from __future__ import annotations

from datetime import datetime, timedelta

from qunflow.domain.ratelimit import Limiter, TokenBucket

T0 = datetime(2026, 3, 2, 2, 0)


def test_a_bucket_allows_its_burst_then_refills_continuously() -> None:
    bucket = TokenBucket(20, 60)
    assert [bucket.take(T0) for _ in range(20)] == [0.0] * 20
    assert bucket.take(T0) == 3.0  # one token comes back every 3 s
    assert bucket.take(T0 + timedelta(seconds=3)) == 0.0
    assert bucket.peek(T0 + timedelta(seconds=3)) > 0


def test_a_telegram_group_takes_20_posts_a_minute_and_the_bot_30_sends_a_second() -> None:
    limiter = Limiter()
    group = [limiter.wait("telegram", "g1", group=True, now=T0) for _ in range(21)]
    assert group[:20] == [0.0] * 20 and group[20] == 3.0
    limiter = Limiter()
    dms = [limiter.wait("telegram", f"u{i}", group=False, now=T0) for i in range(31)]
    assert dms[:30] == [0.0] * 30 and 0 < dms[30] <= 1 / 30 + 1e-9


def test_a_refused_send_takes_no_token_from_the_other_bucket() -> None:
    limiter = Limiter({"slack": {"group": (1, 1)}})
    assert limiter.wait("slack", "c1", group=True, now=T0) == 0.0
    assert limiter.wait("slack", "c1", group=True, now=T0) == 1.0  # the channel is at its limit
    assert limiter.buckets["slack"].tokens == 49  # the bot's bucket lost only the one send


def test_overrides_replace_the_defaults_per_platform_and_unknown_platforms_get_safe_ones() -> None:
    limiter = Limiter({"sandbox": {"bot": (1000, 1)}})
    assert limiter.limits("sandbox")["bot"] == (1000.0, 1.0) and limiter.limits("sandbox")["group"] == (20, 60)
    assert limiter.limits("matrix") == {"bot": (10, 1), "group": (1, 1), "user": (1, 1)}
