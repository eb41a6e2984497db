"""Issue 15's "local day stored once" and "integer surrogate keys" measured in one process, in CPU time.

One DuckDB store holds the floor's data as bench_facts.py loads it (ids as text) with the stored day, plus a
copy of the events with integer member, referrer and channel keys (a prototype: the keys live only here). Each
figure is the median of 3 runs of the same statement, both ways, on the same store:

- `day`: the facts builds (member facts, member days, landing facts) and the event-level COHORT, CURRENT and
  LANDING by channel, with the stored day against the day computed per row (dialects.local_day_duckdb);
- `keys`: the member facts, REFERRED and member days built by text id against integer key, and the event-level
  COHORT by channel; both member-facts builds must give the same aggregates;
- `channel`: GROUP BY channel as text against GROUP BY an integer channel key with the names joined after.

    python bench/bench_keys.py --data /tmp/facts-data/m1000000 [--store /tmp/keys.duckdb] [day keys channel]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
from bench.bench_facts import INSERT_EVENTS, LOAD_EVENTS  # noqa: E402

from qunflow.analytics import facts_duckdb  # noqa: E402
from qunflow.analytics.dialects import for_duckdb, local_day_duckdb  # noqa: E402
from qunflow.analytics.queries import COHORT, CURRENT, LANDING, render  # noqa: E402
from qunflow.analytics.store import SCHEMA  # noqa: E402
from qunflow.settings import Settings  # noqa: E402

TZ = "Asia/Shanghai"
KEYED = """
CREATE TABLE member_keys AS SELECT member_id, CAST(row_number() OVER (ORDER BY min(seq)) AS INTEGER) AS member_key
FROM (SELECT member_id, seq FROM events WHERE member_id IS NOT NULL
      UNION ALL SELECT referrer_id, seq FROM events WHERE referrer_id IS NOT NULL) GROUP BY member_id;
CREATE TABLE channel_keys AS SELECT channel, CAST(row_number() OVER (ORDER BY channel) AS SMALLINT) AS channel_key
FROM (SELECT DISTINCT channel FROM events WHERE channel IS NOT NULL);
CREATE TABLE events_k AS SELECT e.*, k.member_key, r.member_key AS referrer_key, c.channel_key FROM events e
LEFT JOIN member_keys k ON k.member_id = e.member_id LEFT JOIN member_keys r ON r.member_id = e.referrer_id
LEFT JOIN channel_keys c ON c.channel = e.channel ORDER BY e.seq;
"""


def load(conn: Any, data: Path) -> None:
    conn.execute(SCHEMA)
    conn.execute(INSERT_EVENTS + LOAD_EVENTS.format(data=data, where="TRUE"))
    conn.execute(f"UPDATE events SET day = {local_day_duckdb('ts', TZ)}")
    conn.execute("INSERT OR REPLACE INTO event_day_zone VALUES (1, ?)", [TZ])
    conn.execute(KEYED)
    conn.execute("CHECKPOINT")


def timed(conn: Any, label: str, sql: str, params: dict[str, Any], zone: str | None = TZ) -> float:
    text, used = for_duckdb(sql, params, zone)
    cpu = []
    for _ in range(3):
        began = time.process_time()
        conn.execute(text, used)
        cpu.append(time.process_time() - began)
    print(f"{label:58s} CPU {statistics.median(cpu):6.2f} s", flush=True)
    return statistics.median(cpu)


def keyed(sql: str) -> str:
    """The statement over the keyed copy: member and referrer ids replaced by their integer keys."""
    return (sql.replace("member_id", "member_key").replace("referrer_id", "referrer_key")
            .replace("FROM events e", "FROM events_k e").replace("FROM events WHERE", "FROM events_k WHERE"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--store", type=Path, default=Path("/tmp/bench-keys.duckdb"))
    parser.add_argument("parts", nargs="*", default=["day", "keys", "channel"])
    args = parser.parse_args()
    fresh = not args.store.exists()
    conn = duckdb.connect(str(args.store))
    if fresh:
        load(conn, args.data)
    settings = Settings()
    params = {"tz": TZ, "engagement": list(settings.engagement_types), "conversion": list(settings.conversion_types)}
    period = {**params, "cutoff": datetime(2026, 4, 1, 16), "start": date(2026, 1, 1), "end": date(2026, 3, 31),
              "as_of": date(2026, 3, 31), "experiment": None}
    member_facts = facts_duckdb.MEMBER_FACTS.replace("{events}", "events")
    member_days = facts_duckdb.MEMBER_DAYS.replace("{events}", "events")
    if "day" in args.parts:
        conn.execute("CREATE OR REPLACE TABLE links_x AS " + facts_duckdb.LANDING_LINKS.replace("{scope}", ""))
        landing = facts_duckdb.LANDING_ROWS.replace("{links}", "links_x").replace("{events}", "events")
        landing = landing.replace("{person_scope}", "")
        for label, sql, used in (("member_facts build", "CREATE OR REPLACE TABLE x AS " + member_facts, params),
                                 ("member_days build", "CREATE OR REPLACE TABLE x AS " + member_days, params),
                                 ("landing_facts build", "CREATE OR REPLACE TABLE x AS " + landing, {"tz": TZ}),
                                 *[(f"event-level {name} by channel", render(t, "channel", {}), period)
                                   for name, t in (("COHORT", COHORT), ("CURRENT", CURRENT), ("LANDING", LANDING))]):
            timed(conn, f"{label}, day computed per row", sql, used, None)
            timed(conn, f"{label}, day stored", sql, used)
    if "keys" in args.parts:
        timed(conn, "member_facts build, text member_id", "CREATE OR REPLACE TABLE mf_text AS " + member_facts, params)
        timed(conn, "member_facts build, integer member_key", "CREATE OR REPLACE TABLE mf_key AS "
              + keyed(member_facts), params)
        referred = facts_duckdb.REFERRED.replace("{scope}", "")
        timed(conn, "REFERRED, text", referred.replace("{table}", "mf_text"), params)
        timed(conn, "REFERRED, integer", keyed(referred).replace("{table}", "mf_key"), params)
        timed(conn, "member_days build, text", "CREATE OR REPLACE TABLE x AS " + member_days, params)
        timed(conn, "member_days build, integer", "CREATE OR REPLACE TABLE x AS " + keyed(member_days), params)
        check = "SELECT count(*), sum(referred), sum(invites), count(*) FILTER (WHERE r7), sum(revenue_90) FROM "
        same = conn.execute(check + "mf_text").fetchall() == conn.execute(check + "mf_key").fetchall()
        print(f"member facts by text and by key give the same aggregates: {same}")
        cohort = render(COHORT, "channel", {})
        timed(conn, "event-level COHORT by channel, text ids", cohort, period)
        timed(conn, "event-level COHORT by channel, integer keys", keyed(cohort), period)
    if "channel" in args.parts:
        timed(conn, "GROUP BY channel (text) over the events",
              "SELECT channel, count(*), sum(amount) FROM events GROUP BY channel", {})
        timed(conn, "GROUP BY channel_key (integer), names joined after",
              "SELECT c.channel, n, a FROM (SELECT channel_key, count(*) AS n, sum(amount) AS a FROM events_k "
              "GROUP BY channel_key) x LEFT JOIN channel_keys c USING (channel_key)", {})


if __name__ == "__main__":
    main()
