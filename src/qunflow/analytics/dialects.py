"""Render the metric SQL for one engine: the few engine-specific pieces are written as @MACROS.

The templates (analytics/queries.py) are plain SQL that DuckDB and ClickHouse share, plus
`@NAME(args)` macros and `$name` parameters. DuckDB binds parameters; for ClickHouse (chdb or a
server) the validated values are written in as escaped literals.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

MACRO = re.compile(r"@([A-Z_]+)\(([^()]*)\)")
PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


def _args(text: str) -> list[str]:
    return [part.strip() for part in text.split(",")]


DUCKDB: dict[str, Callable[[list[str]], str]] = {
    "LOCAL_DAY": lambda a: f"CAST(timezone($tz, {a[0]} AT TIME ZONE 'UTC') AS DATE)",
    # The local day of an events row's ts (`e.ts` or `ts`): as LOCAL_DAY, or the stored `day` (see for_duckdb).
    "EVENT_DAY": lambda a: f"CAST(timezone($tz, {a[0]} AT TIME ZONE 'UTC') AS DATE)",
    "JSON_TEXT": lambda a: f"json_extract_string({a[0]}, '$.{a[1].strip(chr(39))}')",
    "TEXT": lambda a: f"CAST({a[0]} AS VARCHAR)",
    "NULL_TEXT": lambda a: "CAST(NULL AS VARCHAR)",
    "ISO_WEEK": lambda a: f"strftime({a[0]}, '%G-W%V')",
    "IN_LIST": lambda a: f"list_contains(${a[1]}, {a[0]})",
    "ANY_TRUE": lambda a: f"bool_or({a[0]})",
    "SECONDS_BETWEEN": lambda a: f"((epoch_us({a[0]}) - epoch_us({a[1]})) / 1000000.0)",
    "MEDIAN": lambda a: f"median({a[0]})",
    "COUNT_IF": lambda a: f"coalesce(count_if({a[0]}), 0)",  # count_if of no row is NULL, not 0
    "NULLABLE": lambda a: a[0],
    "NOT_MATERIALIZED": lambda a: "NOT MATERIALIZED",
    "NEXT": lambda a: f"lead({a[0]}) OVER (PARTITION BY {a[1]} ORDER BY {', '.join(a[2:])})",
    "BITS_OR": lambda a: f"bit_or(CAST(1 AS BIGINT) << CAST({a[0]} AS INTEGER))",
    "ANY_BITS": lambda a: f"((({a[0]}) >> CAST({a[1]} AS INTEGER)) & {(1 << int(a[2])) - 1} <> 0)",
    "DAY_SERIES": lambda a: (f"SELECT CAST(${a[0]} AS DATE) + CAST(i AS INTEGER) AS on_day "
                             f"FROM range(CAST(${a[1]} AS DATE) - CAST(${a[0]} AS DATE) + 1) AS t(i)"),
}

CLICKHOUSE: dict[str, Callable[[list[str]], str]] = {
    "LOCAL_DAY": lambda a: f"toDate(toTimeZone({a[0]}, $tz))",
    "EVENT_DAY": lambda a: f"toDate(toTimeZone({a[0]}, $tz))",  # no stored day on ClickHouse
    "JSON_TEXT": lambda a: f"nullIf(JSONExtractString(ifNull({a[0]}, ''), {a[1]}), '')",
    "TEXT": lambda a: f"toString({a[0]})",
    "NULL_TEXT": lambda a: "CAST(NULL AS Nullable(String))",
    "ISO_WEEK": lambda a: f"formatDateTime({a[0]}, '%G-W%V')",
    "IN_LIST": lambda a: f"has(${a[1]}, {a[0]})",
    "ANY_TRUE": lambda a: f"toBool(max({a[0]}))",
    "SECONDS_BETWEEN": lambda a: f"((toUnixTimestamp64Micro({a[0]}) - toUnixTimestamp64Micro({a[1]})) / 1000000.0)",
    "MEDIAN": lambda a: f"quantileExactInclusive(0.5)({a[0]})",
    "COUNT_IF": lambda a: f"countIf({a[0]})",
    # Aggregates over no rows give NULL only on Nullable input (else 0 / 1970-01-01).
    "NULLABLE": lambda a: f"toNullable({a[0]})",
    "NOT_MATERIALIZED": lambda a: "",  # ClickHouse inlines CTEs anyway
    # The next row's value in the partition (NULL on the last): leadInFrame needs its frame spelled out.
    "NEXT": lambda a: (f"leadInFrame(toNullable({a[0]})) OVER (PARTITION BY {a[1]} ORDER BY {', '.join(a[2:])} "
                       "ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)"),
    "BITS_OR": lambda a: f"groupBitOr(bitShiftLeft(toInt64(1), toUInt8({a[0]})))",
    # Any of the `a[2]` bits from bit `a[1]` on.
    "ANY_BITS": lambda a: f"(bitAnd(bitShiftRight({a[0]}, {a[1]}), {(1 << int(a[2])) - 1}) <> 0)",
    "DAY_SERIES": lambda a: (f"SELECT ${a[0]} + toInt32(number) AS on_day "
                             f"FROM numbers(toUInt64(dateDiff('day', ${a[0]}, ${a[1]}) + 1))"),
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


OFFSETS_UNTIL = datetime(datetime.now().year + 5, 1, 1)  # later instants use the zone database per row


@lru_cache(maxsize=32)
def utc_offsets(tz: str) -> tuple[tuple[datetime, int], ...]:
    """(naive UTC instant from which it holds, UTC offset in seconds) of a zone from 1900 to
    OFFSETS_UNTIL, newest first."""
    zone = ZoneInfo(tz)

    def offset(at: datetime) -> int:
        delta = at.replace(tzinfo=UTC).astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    start, end = datetime(1900, 1, 1), OFFSETS_UNTIL
    out = [(start, offset(start))]
    # Day by day in aware UTC, comparing the offsets as they come (a fixed cost of every process that builds
    # the local day: the plain loop took 0.4 s of CPU).
    one_day, stop = timedelta(days=1), end.replace(tzinfo=UTC)
    day = start.replace(tzinfo=UTC)
    current = day.astimezone(zone).utcoffset()
    while day < stop:
        nxt = day + one_day
        if nxt.astimezone(zone).utcoffset() != current:  # a change within (day, nxt]: find its second
            low, high = day.replace(tzinfo=None), nxt.replace(tzinfo=None)
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                low, high = (mid, high) if offset(mid) == out[-1][1] else (low, mid)
            out.append((high.replace(microsecond=0), offset(high)))
            current = nxt.astimezone(zone).utcoffset()
        day = nxt
    return tuple(reversed(out))


def local_day_duckdb(column: str, tz: str) -> str:
    """The calendar day of a naive-UTC column in `tz`, by adding the offset in force: the zone's few
    transitions as one CASE (newest first, so most rows stop at the first test). Several times faster
    than DuckDB's ICU time-zone conversion per row, and exact for every zone (DST included)."""
    offsets = utc_offsets(tz)
    cases = " ".join(f"WHEN {column} >= TIMESTAMP '{since:%Y-%m-%d %H:%M:%S}' THEN INTERVAL '{seconds} seconds'"
                     for since, seconds in offsets[:-1])
    shift = f"CASE {cases} ELSE INTERVAL '{offsets[-1][1]} seconds' END" if cases else \
        f"INTERVAL '{offsets[0][1]} seconds'"
    zone = tz.replace("'", "''")
    return (f"CASE WHEN {column} >= TIMESTAMP '{OFFSETS_UNTIL:%Y-%m-%d}' "
            f"THEN CAST(timezone('{zone}', {column} AT TIME ZONE 'UTC') AS DATE) "
            f"ELSE CAST({column} + {shift} AS DATE) END")


def _stored_day(column: str) -> str:
    """The events' stored day column beside their `ts` column (`e.ts` -> `e.day`)."""
    prefix, _, name = column.rpartition(".")
    if name != "ts":
        raise ValueError(f"@EVENT_DAY takes an events row's ts, not {column!r}")
    return f"{prefix}.day" if prefix else "day"


def for_duckdb(sql: str, params: dict[str, Any], day_zone: str | None = None) -> tuple[str, dict[str, Any]]:
    """The SQL and the parameters it uses (DuckDB refuses unused ones). `day_zone`: the zone of the store's
    stored event days (store.day_zone); when it is the zone asked for, @EVENT_DAY reads them."""
    tz = params.get("tz")
    if tz is None:
        macros = DUCKDB
    else:
        computed = {"LOCAL_DAY": lambda a: local_day_duckdb(a[0], str(tz))}
        stored = {"EVENT_DAY": lambda a: _stored_day(a[0])} if day_zone == tz else \
            {"EVENT_DAY": computed["LOCAL_DAY"]}
        macros = {**DUCKDB, **computed, **stored}
    sql = expand(sql, macros)
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
