"""Exports for BI tools: members (pseudonymous, no profile fields) and metric reports, as CSV or Parquet."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from qunflow.analytics.shipper import analytics
from qunflow.domain.metrics import METRIC_KEYS
from qunflow.errors import InvalidInput
from qunflow.workspace import Workspace

KINDS = {".csv": "csv", ".parquet": "parquet"}

MEMBERS_SQL = """
WITH ev AS (
    SELECT seq, type, ts, member_id, channel, campaign, entry_point, group_key, referrer_id, amount, margin,
           properties, @EVENT_DAY(ts) AS day
    FROM events
),
first_join AS (
    SELECT member_id, ts AS join_ts, day AS join_day, channel, campaign, entry_point, group_key AS first_group,
           @JSON_TEXT(properties, 'tier') AS tier, referrer_id
    FROM ev WHERE type = 'joined' AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY ts, seq) = 1
),
last_join AS (
    SELECT member_id, ts AS last_join_ts, group_key AS current_group FROM ev
    WHERE type = 'joined' AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY ts DESC, seq DESC) = 1
),
left_after AS (
    SELECT l.member_id AS member_id FROM last_join l JOIN ev e ON e.member_id = l.member_id
    WHERE e.type = 'left' AND e.ts > l.last_join_ts GROUP BY l.member_id
),
orders AS (
    SELECT member_id, count(*) AS conversions, sum(amount) AS revenue, sum(margin) AS margin
    FROM ev WHERE @IN_LIST(type, conversion) GROUP BY member_id
)
SELECT f.member_id AS member_id, f.join_ts AS join_ts, f.join_day AS join_day, f.channel AS channel,
       f.campaign AS campaign, f.entry_point AS entry_point, f.first_group AS first_group, f.tier AS tier,
       f.referrer_id AS referrer_id, l.current_group AS current_group,
       x.member_id IS NOT NULL AS has_left,
       coalesce(o.conversions, 0) AS conversions, coalesce(o.revenue, 0) AS revenue,
       coalesce(o.margin, 0) AS margin
FROM first_join f JOIN last_join l ON l.member_id = f.member_id
LEFT JOIN left_after x ON x.member_id = f.member_id LEFT JOIN orders o ON o.member_id = f.member_id
ORDER BY f.join_ts, f.member_id
"""


def export_kind(path: Path) -> str:
    try:
        return KINDS[path.suffix.lower()]
    except KeyError:
        raise InvalidInput(f"{path.name}: export to .csv or .parquet",
                           zh=f"{path.name}:只能导出为 .csv 或 .parquet") from None


def export_members(ws: Workspace, path: Path) -> int:
    """One row per member: acquisition, join, current group, conversions. No personal fields."""
    kind = export_kind(path)
    with analytics(ws) as engine:
        names, rows = engine.query(MEMBERS_SQL, {"tz": ws.settings.timezone,
                                                 "conversion": ws.settings.conversion_types})
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    table = pa.table(columns) if rows else pa.table({name: pa.array([], pa.string()) for name in names})
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
