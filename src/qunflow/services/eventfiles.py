"""Read event files (CSV, JSONL, Parquet) as chunks of raw events in columns, with line numbers for errors."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import orjson
import re2

from qunflow.domain.event_columns import RawBatch
from qunflow.domain.events import KNOWN_FIELDS
from qunflow.errors import InvalidInput

# Rows per chunk, one transaction each. At a million members every chunk touches pages all over the
# member index and the commit writes each of them to the WAL, so fewer, larger commits write less:
# importing 9.7M events (bench/bench_metrics.py --members 1000000) wrote 16 GiB at 50,000 rows and
# 7.8 GiB at 250,000 (68.7k -> 74.5k events/s through `qunflow events import`), for about 170 MiB more
# memory. The CLI's --rows-per-commit help states this default (tested).
CHUNK = 250_000
LONG_NUMBER = re2.compile(r"[0-9]{19}")  # re2: ten times faster than re here
_loads = orjson.loads
_UNREAD = object()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _ReadError(Exception):
    """The file cannot be read on from this line (a CSV quoting error)."""

    def __init__(self, line: int, error: Exception) -> None:
        super().__init__(line, error)
        self.line, self.error = line, error


FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InvalidInput(f"{path.name}: unknown format; use .csv, .jsonl, .ndjson or .parquet",
                           zh=f"{path.name}:未知格式;请使用 .csv、.jsonl、.ndjson 或 .parquet") from None


def _csv_chunks(handle: IO[str], size: int) -> Iterator[tuple[list[int], RawBatch]]:
    """CSV rows as raw batches: a column per header name, an empty cell is an absent field."""
    reader = csv.reader(handle)
    header = next(reader, None)
    if not header or "event_id" not in header:
        raise InvalidInput("the CSV has no header row with event_id, type, ts, ...",
                           zh="CSV 缺少表头行(event_id、type、ts 等)")
    last = 1  # the line of the last row read; line 1 is the header
    while True:
        lines: list[int] = []
        rows: list[list[str]] = []
        try:
            for row in reader:
                if row:  # a blank line is no row (as csv.DictReader has it)
                    lines.append(reader.line_num)
                    rows.append(row)
                    if len(rows) >= size:
                        break
        except csv.Error as exc:
            raise _ReadError(lines[-1] + 1 if lines else last + 1, exc) from None
        if not rows:
            return
        last = lines[-1]
        yield lines, _csv_batch(header, rows)


def _csv_batch(header: list[str], rows: list[list[str]]) -> RawBatch:
    width, count = len(header), len(rows)
    index = {name: at for at, name in enumerate(header) if name}  # a repeated name: its last column wins
    doubtful = bytearray(count)
    full = set(map(len, rows)) == {width}
    if not full:  # short rows lack their last fields; long ones are refused (by row())
        for k, cells in enumerate(rows):
            if len(cells) > width:
                doubtful[k] = 1
    columns: dict[str, list[Any]] = {}
    for name, at in index.items():
        if full:  # an empty cell is an absent field
            values: list[Any] = [v or None for v in map(itemgetter(at), rows)]
        else:
            values = [cells[at] or None if at < len(cells) else None for cells in rows]
        if name not in KNOWN_FIELDS:
            for k, value in enumerate(values):
                if value is not None:
                    doubtful[k] = 1
            continue
        if name == "properties":
            for k, value in enumerate(values):
                if value is not None:
                    values[k] = parsed = _json_or_none(value)
                    if parsed is None:
                        doubtful[k] = 1
        columns[name] = values

    def one(k: int) -> Any:
        """Row k as csv.DictReader gave it, cleaned of empty cells, or the reason it is refused."""
        if len(rows[k]) > width:
            return "more cells than header columns"
        clean: dict[str, Any] = {name: rows[k][at] for name, at in index.items()
                                 if at < len(rows[k]) and rows[k][at] != ""}
        if "properties" in clean:
            try:
                clean["properties"] = json.loads(clean["properties"])
            except (ValueError, RecursionError):  # not JSON; an integer over 4,300 digits; deep nesting
                return "properties is not a JSON object"
        return clean

    return RawBatch(count, columns, one, doubtful)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON; an integer over 4,300 digits; deep nesting
        return None


def _jsonl_chunks(handle: IO[str], size: int) -> Iterator[tuple[list[int], RawBatch]]:
    """JSON lines as raw batches; a blank line is skipped, a bad one is a str: the reason."""
    number = 0
    while True:
        block = list(islice(handle, size))
        if not block:
            return
        # orjson reads an integer of 20 digits or more as a float: such blocks go to json alone.
        fast = LONG_NUMBER.search("".join(block)) is None
        lines: list[int] = []
        items: list[Any] = []
        for line in block:
            number += 1
            item: Any = _UNREAD
            if fast:
                try:
                    item = _loads(line)
                except orjson.JSONDecodeError:
                    pass
                else:  # a str item means an error to the caller: say what is wrong
                    item = "an event must be a JSON object" if isinstance(item, str) else item
            if item is _UNREAD:
                if not line.strip():
                    continue
                item = _json_item(line)
            lines.append(number)
            items.append(item)
        if items:
            yield lines, RawBatch.from_items(items)


def _json_item(line: str) -> Any:
    """One line as json.loads reads it (the reference orjson must agree with), or what is wrong with it."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg}"
    except (ValueError, RecursionError) as exc:  # integers over 4300 digits, deep nesting
        return f"not valid JSON: {str(exc)[:100]}"
    # A str item means an error to the caller: say what is wrong.
    return "an event must be a JSON object" if isinstance(item, str) else item


def _parquet_value(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        # A timestamp column without a time zone has no offset: parse_event refuses it by name.
        return value.isoformat()
    if name == "properties" and isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON; an integer over 4,300 digits; deep nesting
            return value  # text: parse_event refuses it as not a JSON object
    if isinstance(value, Decimal):
        return str(value)
    return value


def parquet_batches(path: Path, size: int) -> Iterator[tuple[int, Any, int]]:
    """(the first row's number, counted from 1, an Arrow record batch, bytes read so far) of a Parquet file."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InvalidInput(f"{path.name}: not a readable Parquet file ({exc})",
                           zh=f"{path.name}:不是可读取的 Parquet 文件({exc})") from exc
    if "event_id" not in parquet.schema_arrow.names:
        raise InvalidInput(f"{path.name}: no event_id column", zh=f"{path.name}:缺少 event_id 列")
    total_rows = max(parquet.metadata.num_rows, 1)
    file_size = path.stat().st_size
    done = 0
    for batch in parquet.iter_batches(batch_size=size):
        first = done + 1
        done += batch.num_rows
        yield first, batch, file_size * done // total_rows


def parquet_raw(first: int, batch: Any) -> tuple[list[int], RawBatch]:
    """A record batch of parquet_batches as the other readers give theirs: line numbers and a raw batch."""
    return list(range(first, first + batch.num_rows)), _parquet_batch(batch)


def _parquet_chunks(path: Path, size: int) -> Iterator[tuple[list[int], RawBatch, int]]:
    for first, batch, position in parquet_batches(path, size):
        yield *parquet_raw(first, batch), position


def _parquet_batch(batch: Any) -> RawBatch:
    """A record batch column by column, each value as _parquet_value makes it; null is absent.

    A time-zone-aware ts column comes as UTC datetimes straight away (what parse_event makes of the
    isoformat text _parquet_value writes); row(k) still gives the row as _parquet_value has it.
    """
    import pyarrow as pa

    names = batch.schema.names
    if len(set(names)) != len(names):  # a repeated column name: row by row, as to_pylist sees it
        return RawBatch.from_items([_parquet_row(row) for row in batch.to_pylist()])
    count = batch.num_rows
    doubtful = bytearray(count)
    columns: dict[str, list[Any]] = {}
    ts_parsed = False
    for name, column in zip(names, batch.columns, strict=True):
        kind = column.type
        if name not in KNOWN_FIELDS:
            for k, valid in enumerate(column.is_valid().to_pylist()):
                if valid:
                    doubtful[k] = 1
            continue
        if name == "ts" and _utc_instants(column):
            ts_parsed = True
            # Exact integer arithmetic, and five times faster than Arrow's own to_pylist of timestamps.
            micros = column.cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_pylist()
            columns[name] = [None if v is None else EPOCH + timedelta(microseconds=v) for v in micros]
            continue
        values = column.to_pylist()
        if pa.types.is_timestamp(kind) or pa.types.is_decimal(kind) or name == "properties":
            values = [None if v is None else _parquet_value(name, v) for v in values]
        columns[name] = values

    def row(k: int) -> Any:
        return _parquet_row(batch.slice(k, 1).to_pylist()[0])

    return RawBatch(count, columns, row, doubtful, ts_parsed=ts_parsed)


def _parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    """One row as the import has always read it."""
    return {k: _parquet_value(k, v) for k, v in row.items() if v is not None}


def _utc_instants(column: Any) -> bool:
    """A time-zone-aware timestamp column, in s, ms or µs, with no value near the ends of the calendar."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if not pa.types.is_timestamp(kind) or kind.tz is None or kind.unit == "ns":
        return False
    bounds = pc.min_max(column.cast(pa.int64())).as_py()
    seconds = {"s": 1, "ms": 1_000, "us": 1_000_000}[kind.unit]
    low, high = -62_104_060_800, 253_339_228_800  # 0002-01-01 and 9998-01-01 in Unix seconds
    return bounds["min"] is None or (low * seconds <= bounds["min"] and bounds["max"] <= high * seconds)


def read_chunks(path: Path, size: int = CHUNK) -> Iterator[tuple[list[int], RawBatch, int]]:
    """Yield (line numbers, the rows as a raw batch, bytes read so far) for a CSV/JSONL/Parquet file.

    For Parquet the "line" is the row number, counted from 1. A row that could not be read at all is
    a str in the batch (`row(k)`): the reason.
    """
    kind = file_format(path)
    if kind == "parquet":
        yield from _parquet_chunks(path, size)
        return
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        chunks = _csv_chunks(handle, size) if kind == "csv" else _jsonl_chunks(handle, size)
        while True:
            try:
                lines, batch = next(chunks)
            except StopIteration:
                break
            except UnicodeDecodeError:  # chunks before this point were imported
                raise InvalidInput(f"{path.name} is not UTF-8 text; save it as UTF-8 and import it again "
                                   "(rows already stored are skipped)",
                                   zh=f"{path.name} 不是 UTF-8 文本:请另存为 UTF-8 后重新导入"
                                      "(已保存的行会被跳过)") from None
            except _ReadError as exc:
                raise InvalidInput(f"{path.name}, line {exc.line}: {exc.error}",
                                   zh=f"{path.name},第 {exc.line} 行:{exc.error}") from None
            yield lines, batch, handle.buffer.tell()  # type: ignore[attr-defined]
