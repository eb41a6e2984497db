"""Render the metric SQL for one engine: the few engine-specific pieces are written as @MACROS.

The templates (analytics/queries.py) are plain SQL that DuckDB and ClickHouse share, plus
`@NAME(args)` macros and `$name` parameters. DuckDB binds parameters; for ClickHouse (chdb or a
server) the validated values are written in as escaped literals.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

MACRO = re.compile(r"@([A-Z_]+)\(([^()]*)\)")
PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


def _args(text: str) -> list[str]:
    return [part.strip() for part in text.split(",")]


DUCKDB: dict[str, Callable[[list[str]], str]] = {
    "LOCAL_DAY": lambda a: f"CAST(timezone($tz, {a[0]} AT TIME ZONE 'UTC') AS DATE)",
    "JSON_TEXT": lambda a: f"json_extract_string({a[0]}, '$.{a[1].strip(chr(39))}')",
    "TEXT": lambda a: f"CAST({a[0]} AS VARCHAR)",
    "NULL_TEXT": lambda a: "CAST(NULL AS VARCHAR)",
    "ISO_WEEK": lambda a: f"strftime({a[0]}, '%G-W%V')",
    "IN_LIST": lambda a: f"list_contains(${a[1]}, {a[0]})",
    "ANY_TRUE": lambda a: f"bool_or({a[0]})",
    "SECONDS_BETWEEN": lambda a: f"((epoch_us({a[0]}) - epoch_us({a[1]})) / 1000000.0)",
    "MEDIAN": lambda a: f"median({a[0]})",
    "NULLABLE": lambda a: a[0],
    "NOT_MATERIALIZED": lambda a: "NOT MATERIALIZED",
}

CLICKHOUSE: dict[str, Callable[[list[str]], str]] = {
    "LOCAL_DAY": lambda a: f"toDate(toTimeZone({a[0]}, $tz))",
    "JSON_TEXT": lambda a: f"nullIf(JSONExtractString(ifNull({a[0]}, ''), {a[1]}), '')",
    "TEXT": lambda a: f"toString({a[0]})",
    "NULL_TEXT": lambda a: "CAST(NULL AS Nullable(String))",
    "ISO_WEEK": lambda a: f"formatDateTime({a[0]}, '%G-W%V')",
    "IN_LIST": lambda a: f"has(${a[1]}, {a[0]})",
    "ANY_TRUE": lambda a: f"toBool(max({a[0]}))",
    "SECONDS_BETWEEN": lambda a: f"((toUnixTimestamp64Micro({a[0]}) - toUnixTimestamp64Micro({a[1]})) / 1000000.0)",
    "MEDIAN": lambda a: f"quantileExactInclusive(0.5)({a[0]})",
    # Aggregates over no rows give NULL only on Nullable input (else 0 / 1970-01-01).
    "NULLABLE": lambda a: f"toNullable({a[0]})",
    "NOT_MATERIALIZED": lambda a: "",  # ClickHouse inlines CTEs anyway
}


def expand(sql: str, macros: dict[str, Callable[[list[str]], str]]) -> str:
    return MACRO.sub(lambda m: macros[m.group(1)](_args(m.group(2))), sql)


def clickhouse_literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"toDateTime64('{value:%Y-%m-%d %H:%M:%S.%f}', 6, 'UTC')"
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(clickhouse_literal(v) for v in value) + "]::Array(String)"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def for_duckdb(sql: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The SQL and the parameters it uses (DuckDB refuses unused ones)."""
    sql = expand(sql, DUCKDB)
    used = set(PARAM.findall(sql))
    return sql, {k: v for k, v in params.items() if k in used}


def for_clickhouse(sql: str, params: dict[str, Any]) -> str:
    sql = expand(sql, CLICKHOUSE)
    missing = set(PARAM.findall(sql)) - set(params)
    if missing:
        raise KeyError(f"missing parameters: {', '.join(sorted(missing))}")
    sql = PARAM.sub(lambda m: clickhouse_literal(params[m.group(1)]), sql)
    # LEFT JOIN must give NULL (not 0 / '') where nothing matched, as in standard SQL.
    return sql + "\nSETTINGS join_use_nulls = 1"
