"""Per-member facts in the analytics store (issue 15): one row per joined member with what the cohort metrics
(M2, M4-M7, M9 and the cohort's size) and the current members' activity (M3) need, kept up to date as events
ship.

A row holds the member's first join (time, local day, acquisition attributes) and what follows from their
events alone: D1/7/14/30 activity, the Day-1 task, the first conversion within 30 days and the 30/90-day
money, invites and referred joins within 30 days, whether a `left` follows the last join, and the last day
with engagement (M3 by group counts a member in their first join's group, as every slice does). None of it
depends on the as-of day, so `queries.COHORT_FACTS` and `CURRENT_FACTS` answer an as-of day with a GROUP BY over
members, comparing stored days and times with it (maturity, activity windows). For CURRENT_FACTS that is exact
only when every event in the store is known as of that day: `usable` says when; otherwise the metrics read the
events (queries.CURRENT). COHORT_FACTS also answers an as-of day in the past (see there): `usable` with no cutoff.

Next to it, `landing_facts` holds what M1 needs (queries.LANDING_FACTS): per person (the member, or the
bare visitor, as queries.LANDING links them; `landing_links` keeps the links), the first landing view of each
local day with the day of the person's previous view and whether a `joined` of the person follows it within
7 x 24 h. A period's first view of a person is then the row whose day is in the period and whose previous
view day is not (local days never go back as time goes on), so M1 is a filter and a GROUP BY, no window.

Maintenance: after a ship, the rows of the members named on the new events are computed again from all their
events (late joins, re-sent ids), then the referred count of every member whose referred joins may have
changed; the landing rows of the persons named on new landing views and joins, and of both sides of every link
the new events changed (a visitor's first member, or a different one from an earlier event), are computed again
too; so are the member days of the members named on new events. On DuckDB all of it reads one copy of the
touched members' events (facts_duckdb._update_touched: from the store's copy ordered by member, by_member.py, in a
store of 1M events or more, else one scan of the store), and the store again only for the other persons' landing
views. A change of time zone or event-type settings rebuilds the tables.
chdb and a ClickHouse server keep the member facts and the landing facts by the same rules in
analytics/facts_clickhouse.py (ReplacingMergeTrees, see facts_clickhouse_sql.py). This module answers for both:
KEEPERS picks the engine's module (facts_duckdb.py, facts_clickhouse.py), whose shared rules are in facts_rules.py.

`landing_days` counts the landing facts per day, previous view day, acquisition attributes and joined
(queries.LANDING_DAYS reads it for the days whose views are all a week old by the cutoff: the query needs no
view's time there); a ship adds the change of the touched persons' rows (on ClickHouse as signed counts, see
facts_clickhouse.py). `member_days` holds what the daily trend's M3 needs (queries.current_daily_facts; on
ClickHouse a ReplacingMergeTree of the same rows, see facts_clickhouse_sql.py): per joined member, the presence
spans (each join's local day until the day of the member's next join or leave, with the join's group) and the
sorted local days with engagement. A span or day after a cutoff only ever lies after that cutoff's last day, so
unlike the member facts these answer any period's days exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from qunflow.analytics import facts_clickhouse, facts_duckdb


class Keeper(Protocol):
    """What keeps the facts on one engine (a module: facts_duckdb, facts_clickhouse)."""

    def usable(self, engine: Any, settings: Any, cutoff: datetime | None) -> bool: ...

    def refresh(self, engine: Any, settings: Any) -> None: ...

    def restate(self, engine: Any, settings: Any, table: Any) -> None: ...


# The module that keeps the facts on each engine (Engine.name): the one place that picks.
KEEPERS: dict[str, Keeper] = {"duckdb": facts_duckdb, "chdb": facts_clickhouse, "clickhouse": facts_clickhouse}


def usable(engine: Any, settings: Any, cutoff: datetime | None) -> bool:
    """The facts answer a query of this cutoff exactly: enabled, computed with these settings over every shipped
    event, and no event at or after the cutoff (what CURRENT_FACTS and the landing facts need). `cutoff` None:
    any cutoff, which the cohort's facts answer (queries.COHORT_FACTS: see there)."""
    if not settings.metrics_facts:
        return False
    return KEEPERS[engine.name].usable(engine, settings, cutoff)


def days_usable(engine: Any, settings: Any) -> bool:
    """The member days answer queries.current_daily_facts for any period: enabled, and computed with these
    settings over every shipped event (events after the period's last day do not change its days)."""
    return usable(engine, settings, None)  # the member days are kept with the member facts, under the same state


def refresh_facts(engine: Any, settings: Any) -> None:
    """Bring the facts up to the shipped events (a no-op when they are off)."""
    if not settings.metrics_facts:
        return
    KEEPERS[engine.name].refresh(engine, settings)


def restate_with_facts(engine: Any, settings: Any, table: Any) -> None:
    """`engine.restate(table)` (events rewritten in place: a merge or its undo) with the facts of every member
    on either side of the rewrite computed again. The facts are marked stale first, so a crash between the
    two leaves them rebuilt on the next ship (and unused meanwhile), never wrong."""
    KEEPERS[engine.name].restate(engine, settings, table)
