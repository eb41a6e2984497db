"""A Parquet batch straight to the event log's driver columns, when checks over whole Arrow columns prove
every row valid: no Python object per value until the driver's own lists. (No Python value is turned into an
Arrow scalar or array here: pyarrow would import pandas to look at it, a quarter of a second.)

The checks are a subset of parse_event's rules that Arrow compute answers for a whole column at once (text
columns of text no longer than MAX_ID without NUL, valid types, time-zone-aware instants, decimal text that
is money already). A batch failing any of them returns None and takes the row-by-row path
(domain.event_columns), which names each bad row with parse_event's reason: the same result, only slower.
tests/integration/test_event_files_arrow.py compares both paths.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from qunflow.domain.event_columns import properties_text
from qunflow.domain.events import KNOWN_FIELDS, MAX_ID, MAX_MONEY, MONEY_FIELDS, TEXT_FIELDS, TYPE_PATTERN

_COLUMN = {"group": "group_key"}  # event field -> events table column, where they differ
_WIDE_MONEY = pa.decimal128(38, 4)
# Money text parse_event reads its own way: spaces, exponents, empty text, and negative zero (stored as
# -0.0000, the str of its Decimal, which Arrow would write as 0.0000).
_UNUSUAL_MONEY = r"^\s|\s$|[eE]|^$|^-[0.]*$"


def schema_fits(schema: pa.Schema) -> bool:
    """Columns of the types driver_columns_of takes: a file of them is likely to skip row-by-row work."""
    text = {"event_id", "type", *TEXT_FIELDS}
    for field in schema:
        kind = field.type
        if field.name in text and not pa.types.is_string(kind):
            return False
        if field.name in MONEY_FIELDS and not (pa.types.is_string(kind) or pa.types.is_decimal(kind)):
            return False
        if field.name == "ts" and not (pa.types.is_timestamp(kind) and kind.tz is not None):
            return False
        if field.name == "properties" and not pa.types.is_string(kind):
            return False
    return KNOWN_FIELDS.issuperset(schema.names)


def driver_columns_of(batch: pa.RecordBatch, postgres: bool) -> dict[str, list[Any]] | None:
    """The batch as store.eventlog.driver_columns would make it after validation, or None when any row
    might be refused or stored differently (then the caller validates row by row)."""
    columns = checked_columns(batch)
    return None if columns is None else driver_lists(columns, postgres)


def checked_columns(batch: pa.RecordBatch) -> dict[str, pa.Array] | None:
    """The batch's columns keyed by events table column once every row is proven valid, as they will be
    stored: text ("" is absent), ts as naive UTC microseconds, money as decimal(38, 4). Columns no row uses
    are left out (stored as NULL). None when any row might be refused or stored differently."""
    names = batch.schema.names
    if len(set(names)) != len(names) or not KNOWN_FIELDS.issuperset(names) or not batch.num_rows:
        return None
    if any(name not in names or batch.column(name).null_count for name in ("event_id", "type", "ts")):
        return None
    event_id = _text(batch.column("event_id"))
    ts = _instants(batch.column("ts"))
    if event_id is None or event_id.null_count or ts is None or not _types_ok(batch.column("type")):
        return None
    columns: dict[str, pa.Array] = {"event_id": event_id, "type": batch.column("type"), "ts": ts}
    identified: Any = None
    for name in (*TEXT_FIELDS, *MONEY_FIELDS):
        if name not in names or batch.column(name).null_count == batch.num_rows:
            continue
        values = _money(batch.column(name)) if name in MONEY_FIELDS else _text(batch.column(name))
        if values is None:
            return None
        if name in ("member_id", "visitor_id"):
            present = values.is_valid()
            identified = present if identified is None else pc.or_(identified, present)
        if values.null_count != len(values):  # a column no event uses is left to its default, NULL
            columns[_COLUMN.get(name, name)] = values
    if identified is None or not pc.all(identified).as_py():
        return None  # member_id or visitor_id is required
    if "properties" in names and batch.column("properties").null_count != batch.num_rows:
        properties = _properties(batch.column("properties"))
        if properties is None:
            return None
        if properties.null_count != len(properties):
            columns["properties"] = properties
    return columns


def driver_lists(columns: dict[str, pa.Array], postgres: bool) -> dict[str, list[Any]]:
    """checked_columns as the driver is sent them: naive datetimes and Decimal on PostgreSQL; on SQLite the
    text SQLAlchemy stores (store.eventlog._sqlite_stamps for ts, str(Decimal) for money)."""
    out: dict[str, list[Any]] = {}
    for name, values in columns.items():
        if not postgres and (name == "ts" or pa.types.is_decimal(values.type)):
            values = values.cast(pa.string())
        out[name] = values.to_pylist()
    return out


def _types_ok(column: pa.Array) -> bool:
    if not pa.types.is_string(column.type):
        return False
    distinct = pc.unique(column).to_pylist()
    return all(v != "experiment_exposure" and TYPE_PATTERN.fullmatch(v) for v in distinct)


def _text(column: pa.Array) -> pa.Array | None:
    """A text column as parse_event keeps it ("" is absent), or None when a value needs parse_event."""
    if not pa.types.is_string(column.type):
        return None
    lengths = pc.utf8_length(column)
    if (pc.max(lengths).as_py() or 0) > MAX_ID or pc.any(pc.match_substring(column, "\x00")).as_py():
        return None
    if pc.min(lengths).as_py() == 0:  # empty text is an absent field
        column = pc.if_else(lengths.cast(pa.bool_()), column, pa.nulls(len(column), pa.string()))
    return column


def _money(column: pa.Array) -> pa.Array | None:
    """Money as decimal(38, 4), or None when a value needs parse_event.

    Text or decimal columns only, with at most four decimals (no rounding here), below MAX_MONEY, and no
    negative zero (stored as -0.0000, which Arrow would write as 0.0000)."""
    if pa.types.is_decimal(column.type):
        if column.type.scale > 4:  # parse_event rounds: leave it to parse_event
            return None
    elif not pa.types.is_string(column.type) or pc.any(pc.match_substring_regex(column, _UNUSUAL_MONEY)).as_py():
        return None
    try:
        money = column.cast(_WIDE_MONEY)  # refuses text with more than four decimals
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    bounds = pc.min_max(money).as_py()
    if bounds["min"] is not None and max(-bounds["min"], bounds["max"]) >= MAX_MONEY:
        return None
    return money


def _instants(column: pa.Array) -> pa.Array | None:
    """Time-zone-aware instants as naive UTC microseconds, or None."""
    from qunflow.services.eventfiles import _utc_instants

    if not _utc_instants(column):
        return None
    return column.cast(pa.timestamp("us", "UTC")).cast(pa.timestamp("us"))


def _properties(column: pa.Array) -> pa.Array | None:
    """JSON object text as the event log stores it (domain.event_columns.properties_text: the parsed object
    written again; "", null and {} are absent), or None when a value needs parse_event. Each distinct text is
    parsed once: most files repeat a few (a tier, a source)."""
    if not pa.types.is_string(column.type):
        return None
    encoded = column.dictionary_encode()
    texts: list[str | None] = []
    for raw in encoded.dictionary.to_pylist():
        try:
            parsed = json.loads(raw) if raw != "" else None  # the row path reads "" as absent too
        except (ValueError, RecursionError):
            return None
        ok, text = properties_text(parsed)
        if not ok:
            return None
        texts.append(text)
    return pc.take(_strings(texts), encoded.indices)


def _strings(values: list[str | None]) -> pa.Array:
    """Python text as an Arrow string array, from buffers: converting Python objects makes pyarrow import
    pandas."""
    import numpy as np  # loaded by pyarrow already

    encoded = [b"" if value is None else value.encode() for value in values]
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int32, count=len(values)), out=offsets[1:])
    valid = np.packbits(np.fromiter((value is not None for value in values), dtype=bool, count=len(values)),
                        bitorder="little")
    return pa.Array.from_buffers(pa.string(), len(values), [pa.py_buffer(valid.tobytes()),
                                                            pa.py_buffer(offsets.tobytes()),
                                                            pa.py_buffer(b"".join(encoded))])
