"""Exports for BI tools: members (pseudonymous, no profile fields) and metric reports, as CSV or Parquet."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from qunflow.analytics.shipper import ship
from qunflow.analytics.store import connect
from qunflow.domain.metrics import METRIC_KEYS
from qunflow.errors import InvalidInput
from qunflow.workspace import Workspace

KINDS = {".csv": "csv", ".parquet": "parquet"}

MEMBERS_SQL = """
WITH ev AS (SELECT *, CAST(timezone($tz, ts AT TIME ZONE 'UTC') AS DATE) AS day FROM events),
first_join AS (
    SELECT member_id, ts AS join_ts, day AS join_day, channel, campaign, entry_point, group_key AS first_group,
           json_extract_string(properties, '$.tier') AS tier, referrer_id
    FROM ev WHERE type = 'joined' AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY ts, seq) = 1
),
last_join AS (
    SELECT member_id, ts AS last_join_ts, group_key AS current_group FROM ev
    WHERE type = 'joined' AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY ts DESC, seq DESC) = 1
),
orders AS (
    SELECT member_id, count(*) AS conversions, sum(amount) AS revenue, sum(margin) AS margin
    FROM ev WHERE list_contains($conversion, type) GROUP BY member_id
)
SELECT f.member_id, f.join_ts, f.join_day, f.channel, f.campaign, f.entry_point, f.first_group, f.tier,
       f.referrer_id, l.current_group,
       EXISTS (SELECT 1 FROM ev e WHERE e.member_id = f.member_id AND e.type = 'left'
               AND e.ts > l.last_join_ts) AS has_left,
       coalesce(o.conversions, 0) AS conversions, coalesce(o.revenue, 0) AS revenue,
       coalesce(o.margin, 0) AS margin
FROM first_join f JOIN last_join l USING (member_id) LEFT JOIN orders o USING (member_id)
ORDER BY f.join_ts, f.member_id
"""


def export_kind(path: Path) -> str:
    try:
        return KINDS[path.suffix.lower()]
    except KeyError:
        raise InvalidInput(f"{path.name}: export to .csv or .parquet") from None


def export_members(ws: Workspace, path: Path) -> int:
    """One row per member: acquisition, join, current group, conversions. No personal fields."""
    kind = export_kind(path)
    ship(ws)
    with connect(ws.settings.analytics_file) as duck:
        table: pa.Table = duck.sql(MEMBERS_SQL, params={"tz": ws.settings.timezone,
                                                        "conversion": ws.settings.conversion_types}).to_arrow_table()
    _write(table, path, kind)
    return table.num_rows


def export_report(report: dict[str, Any], path: Path) -> int:
    """A metrics report as a table: one row per slice value plus a TOTAL row."""
    kind = export_kind(path)
    by = report["by"]
    rows = [*report["rows"], {by: "TOTAL", **report["total"]}]
    columns = {by: [str(r[by]) if r[by] is not None else None for r in rows]}
    for key in METRIC_KEYS:
        values = [r[key] for r in rows]
        columns[key] = pa.array([float(v) if v is not None else None for v in values], type=pa.float64()) \
            if any(isinstance(v, float) for v in values) else values  # type: ignore[assignment]
    table = pa.table(columns)
    table = table.replace_schema_metadata({"from": report["from"], "to": report["to"], "as_of": report["as_of"]})
    _write(table, path, kind)
    return table.num_rows


def _write(table: pa.Table, path: Path, kind: str) -> None:
    if kind == "parquet":
        pq.write_table(table, path)
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.column_names)
        for row in zip(*(column.to_pylist() for column in table.columns), strict=True):
            writer.writerow(["" if v is None else v for v in row])
