"""What the per-member facts (analytics/facts.py) are kept by on every engine: the key of what they were computed
with, the SQL parameters taken from the settings, and the maintenance's shared knobs. facts_duckdb.py and
facts_clickhouse.py read them from here when they run (a test may change FULL_REBUILD_SHARE for both).
"""

from __future__ import annotations

import json
from typing import Any

# Bumped when the tables, their columns or their meaning change: a store with older facts rebuilds them
# (4: landing_days; 5: no group of the last join, M3 by group reads the first join's).
FACTS_VERSION = 5
# Above this share of members touched by one ship, one pass over every event beats the per-member update.
FULL_REBUILD_SHARE = 0.2
LANDING_TYPES = "('landing_view', 'joined')"  # the events M1's landing facts read
# DuckDB: a store of at least this many events keeps a copy of them ordered by member (analytics/by_member.py);
# the events shipped since join it as a sorted run once they exceed BY_MEMBER_TAIL_SHARE of it.
BY_MEMBER_MIN_EVENTS = 1_000_000
BY_MEMBER_TAIL_SHARE = 0.25


def settings_key(settings: Any) -> str:
    """What the facts were computed with (and their version): a change of any of it rebuilds them."""
    return json.dumps({"version": FACTS_VERSION, "tz": settings.timezone,
                       "engagement": sorted(settings.engagement_types),
                       "conversion": sorted(settings.conversion_types)}, sort_keys=True)


def params(settings: Any) -> dict[str, Any]:
    """The settings the facts' SQL reads: the time zone and the engagement and conversion event types."""
    return {"tz": settings.timezone, "engagement": list(settings.engagement_types),
            "conversion": list(settings.conversion_types)}
