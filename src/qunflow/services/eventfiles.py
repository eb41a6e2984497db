"""Read event files (CSV, JSONL, Parquet) as chunks of raw event dicts, with line numbers for errors."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from qunflow.errors import InvalidInput

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InvalidInput(f"{path.name}: unknown format; use .csv, .jsonl, .ndjson or .parquet") from None


def _csv_rows(handle: IO[str]) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(handle)
    if not reader.fieldnames or "event_id" not in reader.fieldnames:
        raise InvalidInput("the CSV has no header row with event_id, type, ts, ...")
    for row in reader:
        clean: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
        if None in row:
            yield reader.line_num, "more cells than header columns"
            continue
        if "properties" in clean:
            try:
                clean["properties"] = json.loads(clean["properties"])
            except json.JSONDecodeError:
                yield reader.line_num, "properties is not a JSON object"
                continue
        yield reader.line_num, clean


def _jsonl_rows(handle: IO[str]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            item = f"not valid JSON: {exc.msg}"
        except (ValueError, RecursionError) as exc:  # integers over 4300 digits, deep nesting
            item = f"not valid JSON: {str(exc)[:100]}"
        else:
            if isinstance(item, str):  # a str item means an error to the caller: say what is wrong
                item = "an event must be a JSON object"
        yield number, item


def _parquet_value(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        # A timestamp column without a time zone has no offset: parse_event refuses it by name.
        return value.isoformat()
    if name == "properties" and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, Decimal):
        return str(value)
    return value


def _parquet_chunks(path: Path, size: int) -> Iterator[tuple[list[int], list[Any], int]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InvalidInput(f"{path.name}: not a readable Parquet file ({exc})") from exc
    if "event_id" not in parquet.schema_arrow.names:
        raise InvalidInput(f"{path.name}: no event_id column")
    total_rows = max(parquet.metadata.num_rows, 1)
    file_size = path.stat().st_size
    done = 0
    for batch in parquet.iter_batches(batch_size=size):
        items = [{k: _parquet_value(k, v) for k, v in row.items() if v is not None} for row in batch.to_pylist()]
        lines = list(range(done + 1, done + len(items) + 1))
        done += len(items)
        yield lines, items, file_size * done // total_rows


def read_chunks(path: Path, size: int = 5000) -> Iterator[tuple[list[int], list[Any], int]]:
    """Yield (line numbers, raw items, bytes read so far). A str item is a parse error.

    For Parquet the "line" is the row number, counted from 1.
    """
    if file_format(path) == "parquet":
        yield from _parquet_chunks(path, size)
        return
    reader = _csv_rows if file_format(path) == "csv" else _jsonl_rows
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        lines: list[int] = []
        items: list[Any] = []
        rows = reader(handle)
        last = 1 if reader is _csv_rows else 0  # a CSV file's line 1 is its header
        while True:
            try:
                number, item = next(rows)
            except StopIteration:
                break
            except UnicodeDecodeError:  # chunks before this point were imported
                raise InvalidInput(f"{path.name} is not UTF-8 text; save it as UTF-8 and import it again "
                                   "(rows already stored are skipped)") from None
            except csv.Error as exc:
                raise InvalidInput(f"{path.name}, line {last + 1}: {exc}") from None
            last = number
            lines.append(number)
            items.append(item)
            if len(items) >= size:
                yield lines, items, handle.buffer.tell()  # type: ignore[attr-defined]
                lines, items = [], []
        if items:
            yield lines, items, path.stat().st_size
