"""The DuckDB local day (UTC offset by the zone's transitions) equals Python's zoneinfo, DST edges included."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from qunflow.analytics.dialects import OFFSETS_UNTIL, local_day_duckdb, utc_offsets

ZONES = ["Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "UTC",
         "America/Sao_Paulo", "Pacific/Apia"]


@pytest.mark.parametrize("tz", ZONES)
def test_every_instant_gets_the_calendar_day_of_its_zone(tz: str) -> None:
    rnd = random.Random(tz)
    moments = [datetime(1901, 1, 1) + timedelta(seconds=rnd.randrange(0, 150 * 365 * 86400)) for _ in range(5000)]
    for since, _seconds in utc_offsets(tz)[:40]:  # a second either side of each recent transition
        moments += [since - timedelta(seconds=1), since, since + timedelta(seconds=1)]
    moments += [OFFSETS_UNTIL - timedelta(microseconds=1), OFFSETS_UNTIL, OFFSETS_UNTIL + timedelta(days=200)]
    conn = duckdb.connect()
    conn.execute("CREATE TABLE t AS SELECT unnest($ts) AS ts", {"ts": moments})
    got = [row[0] for row in conn.execute(f"SELECT {local_day_duckdb('ts', tz)} FROM t").fetchall()]
    zone = ZoneInfo(tz)
    expected = [m.replace(tzinfo=UTC).astimezone(zone).date() for m in moments]
    assert [(m, g, e) for m, g, e in zip(moments, got, expected, strict=True) if g != e] == []
