"""Read event files (CSV, JSONL) as chunks of raw event dicts, with line numbers for errors."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from qunflow.errors import InvalidInput

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InvalidInput(f"{path.name}: unknown format; use .csv, .jsonl or .ndjson") from None


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
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON: {exc.msg}"


def read_chunks(path: Path, size: int = 5000) -> Iterator[tuple[list[int], list[Any], int]]:
    """Yield (line numbers, raw items, bytes read so far). A str item is a parse error."""
    reader = _csv_rows if file_format(path) == "csv" else _jsonl_rows
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        lines: list[int] = []
        items: list[Any] = []
        for number, item in reader(handle):
            lines.append(number)
            items.append(item)
            if len(items) >= size:
                yield lines, items, handle.buffer.tell()  # type: ignore[attr-defined]
                lines, items = [], []
        if items:
            yield lines, items, path.stat().st_size
