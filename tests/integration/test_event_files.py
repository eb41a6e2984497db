"""Reading event files in columns gives what reading them row by row gave: values, reasons, line numbers.

The reference readers below are the row-by-row readers the import used before (csv.DictReader,
json.loads per line, Parquet to_pylist), each row then checked by parse_event.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from qunflow.domain.event_columns import EventColumns, event_columns, validate_raw
from qunflow.domain.events import Event, parse_event
from qunflow.errors import InvalidInput
from qunflow.services.eventfiles import _parquet_value, read_chunks
from qunflow.services.fileimport import import_event_file
from qunflow.store.eventlog import count_events, driver_columns
from qunflow.store.tables import events
from qunflow.workspace import Workspace


def reference_csv(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
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


def reference_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                item = f"not valid JSON: {exc.msg}"
            except (ValueError, RecursionError) as exc:
                item = f"not valid JSON: {str(exc)[:100]}"
            else:
                if isinstance(item, str):
                    item = "an event must be a JSON object"
            yield number, item


def reference_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    rows = pq.read_table(path).to_pylist()
    for number, row in enumerate(rows, start=1):
        yield number, {k: _parquet_value(k, v) for k, v in row.items() if v is not None}


def reference(path: Path) -> tuple[list[Event], list[tuple[int, str]]]:
    reader = {".csv": reference_csv, ".jsonl": reference_jsonl, ".parquet": reference_parquet}[path.suffix]
    valid: list[Event] = []
    errors: list[tuple[int, str]] = []
    for line, item in reader(path):
        try:
            if isinstance(item, str):
                raise InvalidInput(item)
            valid.append(parse_event(item))
        except InvalidInput as exc:
            errors.append((line, str(exc)))
    return valid, errors


def stored(batches: list[EventColumns]) -> list[tuple[Any, ...]]:
    """The rows as bound on SQLite, in order."""
    rows: list[tuple[Any, ...]] = []
    for batch in batches:
        columns = driver_columns(batch, postgres=False)
        names = sorted(columns)
        rows += [tuple(zip(names, values, strict=True)) for values in zip(*(columns[n] for n in names), strict=True)]
    return [tuple(pair for pair in row if pair[1] is not None) for row in rows]


def assert_same_as_reference(path: Path, chunk: int) -> None:
    batches: list[EventColumns] = []
    errors: list[tuple[int, str]] = []
    for lines, raw, _ in read_chunks(path, chunk):
        valid, rejected = validate_raw(raw)
        batches.append(valid)
        errors += [(lines[index], reason) for index, reason in rejected]
    expected, expected_errors = reference(path)
    assert errors == expected_errors
    assert stored(batches) == stored([event_columns(expected)])


# ---- files made of tricky values ----------------------------------------------------------------

RELAXED = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
NAMES = ["event_id", "type", "ts", "member_id", "visitor_id", "channel", "group", "amount", "margin",
         "properties", "experiment", "variant", "bogus"]
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
stamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets)
cell_text = st.sampled_from(["", "m1", "v1", "ads", "order", "message", "experiment_exposure", "Bad Type",
                             "19.9", "-0", "abc", "1e20", "NaN", "x" * 129, "a,b", 'say "hi"', "two\nlines",
                             "two\r\nlines", "七", "2026-01-20T08:30:00+08:00", "2026-01-20T08:30:00",
                             '{"experiment": "e", "variant": "b"}', '{"k": 1}', "{}", "[1]", "{bad", "null",
                             "\ud800"]) | st.text(max_size=6)
json_value = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | cell_text
              | stamps.map(lambda d: d.isoformat())
              | st.dictionaries(cell_text, st.integers() | cell_text | st.floats(), max_size=2)
              | st.lists(st.integers(), max_size=2))
json_rows = st.lists(st.dictionaries(st.sampled_from(NAMES), json_value, max_size=8) | st.sampled_from(
    ["", "   ", "{bad", '"just text"', "[1]", "NaN", '{"event_id": "e", "event_id": "f"}',
     '{"a": 123456789012345678901234567890}', '["\\ud800"]', "[" * 2000 + "]" * 2000, "1e400"]), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=RELAXED)
@given(json_rows, st.sampled_from([1, 3, 5000]))
def test_jsonl_files_read_as_they_were_read_row_by_row(tmp_path: Path, rows: list[Any], chunk: int) -> None:
    path = tmp_path / "events.jsonl"
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", errors="surrogatepass")
    if any("\ud800" in line for line in lines):  # not UTF-8: both refuse the file
        with pytest.raises(InvalidInput):
            list(read_chunks(path))
        return
    assert_same_as_reference(path, chunk)


def test_long_integers_in_jsonl_are_read_as_json_reads_them(tmp_path: Path) -> None:
    """orjson would read these as floats: a member id of 23 digits must stay those digits."""
    path = tmp_path / "events.jsonl"
    event = '{"event_id": "e%d", "type": "order", "ts": "2026-01-20T08:30:00Z", '
    path.write_text((event % 1) + '"member_id": 12345678901234567890123}\n'
                    + (event % 2) + '"member_id": "m", "properties": {"n": 18446744073709551616}}\n'
                    + (event % 3) + '"member_id": "m", "amount": 9223372036854775807}\n', encoding="utf-8")
    [(_, raw, _)] = list(read_chunks(path))
    valid, rejected = validate_raw(raw)
    assert valid.columns["member_id"] == ["12345678901234567890123", "m"]
    assert valid.columns["properties"] == [None, '{"n": 18446744073709551616}']
    assert rejected == [(2, "amount must be a finite number below 1e13")]
    assert_same_as_reference(path, 5000)


csv_header = st.lists(st.sampled_from([*NAMES, ""]), min_size=1, max_size=9).map(lambda h: ["event_id", *h])
csv_rows = st.lists(st.lists(cell_text.filter(lambda c: "\ud800" not in c), max_size=11), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=RELAXED)
@given(csv_header, csv_rows, st.sampled_from([1, 4, 5000]))
def test_csv_files_read_as_they_were_read_row_by_row(tmp_path: Path, header: list[str], rows: list[list[str]],
                                                     chunk: int) -> None:
    path = tmp_path / "events.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)  # an empty list is a blank line
    assert_same_as_reference(path, chunk)


def test_a_valid_csv_stores_every_row_and_a_bad_one_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text('event_id,type,ts,member_id,amount,properties\n'
                    'a,order,2026-01-20T08:30:00+08:00,m1,19.9,"{""sku"": ""A""}"\n'
                    '\n'
                    'b,message,"2026-01-20T08:30:00Z",m2,,\n'
                    '"c\nd",message,2026-01-20T08:30:00Z,,,\n'
                    'e,message,2026-01-20T08:30:00Z,m3,,,extra\n'
                    'f,message,2026-01-20T08:30:00Z,m4\n', encoding="utf-8")
    [(lines, raw, _)] = list(read_chunks(path))
    valid, rejected = validate_raw(raw)
    assert lines == [2, 4, 6, 7, 8]
    assert [(lines[i], reason) for i, reason in rejected] == [(6, "member_id or visitor_id is required"),
                                                             (7, "more cells than header columns")]
    assert valid.columns["event_id"] == ["a", "b", "f"]
    assert valid.columns["amount"] == [Decimal("19.9000"), None, None]
    assert valid.columns["properties"] == ['{"sku": "A"}', None, None]
    assert_same_as_reference(path, 2)


parquet_columns = st.fixed_dictionaries({
    "event_id": st.lists(st.sampled_from(["a", "b", "", None]), min_size=6, max_size=6)},
    optional={
        "type": st.lists(st.sampled_from(["order", "message", "Bad", "experiment_exposure", None]),
                         min_size=6, max_size=6),
        "member_id": st.lists(st.sampled_from(["m1", "", None]), min_size=6, max_size=6),
        "amount": st.lists(st.none() | st.floats(allow_nan=True) | st.just(-0.0), min_size=6, max_size=6),
        "margin": st.lists(st.none() | st.decimals(min_value=-10**14, max_value=10**14, places=2, allow_nan=False),
                           min_size=6, max_size=6),
        "properties": st.lists(st.sampled_from(['{"experiment": "e", "variant": "b"}', '{"k": 1}', "{bad", "",
                                                "[1]", None]), min_size=6, max_size=6),
        "bogus": st.lists(st.none() | st.integers(0, 9), min_size=6, max_size=6),
    })
parquet_ts = st.sampled_from(["utc", "shanghai", "naive", "text"])


@settings(max_examples=40, deadline=None, suppress_health_check=RELAXED)
@given(parquet_columns, parquet_ts, st.lists(stamps, min_size=6, max_size=6), st.sampled_from([2, 5000]))
def test_parquet_files_read_as_they_were_read_row_by_row(tmp_path: Path, columns: dict[str, list[Any]], ts: str,
                                                         moments: list[datetime], chunk: int) -> None:
    arrays: dict[str, Any] = {name: pa.array(values, {"amount": pa.float64(), "margin": pa.decimal128(18, 2),
                                                      "bogus": pa.int64()}.get(name, pa.string()))
                              for name, values in columns.items()}
    utc = [m.astimezone(UTC) for m in moments]
    arrays["ts"] = {"utc": lambda: pa.array(utc, pa.timestamp("us", "UTC")),
                    "shanghai": lambda: pa.array(utc, pa.timestamp("ms", "UTC")).cast(
                        pa.timestamp("ms", "Asia/Shanghai")),
                    "naive": lambda: pa.array([m.replace(tzinfo=None) for m in utc], pa.timestamp("us")),
                    "text": lambda: pa.array([m.isoformat() for m in moments], pa.string())}[ts]()
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table(arrays), path)
    assert_same_as_reference(path, chunk)


def test_a_parquet_file_keeps_its_values_and_names_each_bad_row(tmp_path: Path) -> None:
    moment = datetime(2026, 1, 20, 0, 30, tzinfo=UTC)
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({
        "event_id": ["a", "b", "c", "d"],
        "type": ["order", "message", "message", "order"],
        "ts": pa.array([moment] * 4, pa.timestamp("ms", "UTC")).cast(pa.timestamp("ms", "Asia/Shanghai")),
        "member_id": ["m1", "m2", None, "m4"],
        "amount": pa.array([Decimal("19.90"), None, None, Decimal("-0.00")], pa.decimal128(18, 2)),
        "properties": ['{"sku": "A"}', None, None, "{bad"],
        "bogus": pa.array([None, 7, None, None], pa.int64()),
    }), path)
    [(lines, raw, _)] = list(read_chunks(path))
    valid, rejected = validate_raw(raw)
    assert [(lines[i], reason) for i, reason in rejected] == [
        (2, "unknown field(s): bogus"), (3, "member_id or visitor_id is required"),
        (4, "properties must be a JSON object")]
    assert valid.columns["ts"] == [moment] and valid.columns["amount"] == [Decimal("19.9000")]
    assert valid.columns["properties"] == ['{"sku": "A"}']
    assert_same_as_reference(path, 5000)


# ---- the import: chunks commit in file order, progress after each commit ------------------------

def event_lines(start: int, stop: int) -> str:
    return "".join(json.dumps({"event_id": f"e{i}", "type": "message", "ts": "2026-03-01T00:00:00Z",
                               "member_id": f"m{i % 7}"}) + "\n" for i in range(start, stop))


def stored_ids(ws: Workspace) -> list[str]:
    with ws.engine.connect() as conn:
        return list(conn.execute(select(events.c.event_id).order_by(events.c.seq)).scalars())


CHUNK = 1000  # small chunks here, so that a few thousand rows span several transactions


@pytest.fixture(params=[False, True], ids=["in-process", "reader-process"])
def pipeline(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Both ways of reading a file; the reader process is gone when the import returns or fails."""
    before = _children()
    yield request.param
    assert _children() == before


def _children() -> list[str]:
    return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()


def test_a_file_of_many_chunks_is_stored_in_file_order_with_progress_after_each_commit(
        any_workspace: Workspace, tmp_path: Path, pipeline: bool) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(event_lines(0, 2 * CHUNK + 7), encoding="utf-8")
    seen: list[tuple[int, int]] = []

    def progress(position: int) -> None:
        with any_workspace.engine.connect() as conn:
            seen.append((position, count_events(conn)))

    result = import_event_file(any_workspace.engine, path, on_progress=progress, chunk=CHUNK,
                               pipeline=pipeline)
    assert (result.stored, result.duplicates, result.errors) == (2 * CHUNK + 7, 0, [])
    assert stored_ids(any_workspace) == [f"e{i}" for i in range(2 * CHUNK + 7)]
    assert [count for _, count in seen] == [CHUNK, 2 * CHUNK, 2 * CHUNK + 7]  # reported once committed
    assert seen[-1][0] == path.stat().st_size
    again = import_event_file(any_workspace.engine, path, chunk=CHUNK)
    assert (again.stored, again.duplicates) == (0, 2 * CHUNK + 7)


def test_a_read_error_keeps_the_chunks_read_before_it(workspace: Workspace, tmp_path: Path,
                                                     pipeline: bool) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(event_lines(0, 2 * CHUNK + CHUNK // 2).encode() + b'{"event_id": "\xff"}\n')
    with pytest.raises(InvalidInput, match="not UTF-8"):
        import_event_file(workspace.engine, path, chunk=CHUNK, pipeline=pipeline)
    assert stored_ids(workspace) == [f"e{i}" for i in range(2 * CHUNK)]


def test_a_chunk_the_database_refuses_stops_the_import_after_the_chunks_before(workspace: Workspace,
                                                                               tmp_path: Path, pipeline: bool) -> None:
    with workspace.engine.begin() as conn:
        conn.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.event_id = 'e{CHUNK + 3}' "
                          "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"))
    path = tmp_path / "events.jsonl"
    path.write_text(event_lines(0, 3 * CHUNK), encoding="utf-8")
    with pytest.raises(sqlite3.IntegrityError, match="refused by a trigger"):  # the driver's own error, as before
        import_event_file(workspace.engine, path, chunk=CHUNK, pipeline=pipeline)
    assert stored_ids(workspace) == [f"e{i}" for i in range(CHUNK)]  # the refused chunk left no trace


def test_the_reader_process_passes_its_errors_on_and_a_reader_that_dies_is_reported(
        workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = tmp_path / "events.parquet"
    damaged.write_bytes(b"PAR1 not really")
    with pytest.raises(InvalidInput, match="not a readable Parquet file"):
        import_event_file(workspace.engine, damaged, pipeline=True)
    path = tmp_path / "events.jsonl"
    path.write_text(event_lines(0, 10), encoding="utf-8")
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a reader that ends without a word
    with pytest.raises(RuntimeError, match=r"reading events.jsonl ended unexpectedly \(exit code 1\)"):
        import_event_file(workspace.engine, path, pipeline=True)
    assert stored_ids(workspace) == []


def test_the_import_page_cache_is_given_back_afterwards_also_after_an_error(workspace: Workspace,
                                                                           tmp_path: Path) -> None:
    def cache_sizes() -> list[int]:
        """Of the pool's first two connections, held at once: the import's is one of them."""
        with workspace.engine.connect() as one, workspace.engine.connect() as two:
            return [int(c.exec_driver_sql("PRAGMA cache_size").scalar_one()) for c in (one, two)]

    usual = cache_sizes()
    path = tmp_path / "events.jsonl"
    path.write_text(event_lines(0, 10), encoding="utf-8")
    import_event_file(workspace.engine, path)
    assert cache_sizes() == usual

    def stop(_: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        import_event_file(workspace.engine, path, on_progress=stop)
    assert cache_sizes() == usual


@pytest.mark.parametrize(("unit", "ends"), [("s", False), ("ms", False), ("us", False), ("ms", True),
                                           ("us", True), ("ns", False)])
def test_parquet_instants_read_as_before_also_at_the_ends_of_the_calendar(tmp_path: Path, unit: str,
                                                                          ends: bool) -> None:
    moments = [datetime(2026, 1, 20, 0, 30, 0, 123000 if unit != "s" else 0, tzinfo=UTC)]
    if ends:  # the fast way is left to the old one near year 1 and year 9999
        moments += [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"event_id": [f"e{i}" for i in range(len(moments))], "type": ["message"] * len(moments),
                             "ts": pa.array(moments, pa.timestamp(unit, "UTC")),
                             "member_id": ["m1"] * len(moments)}), path)
    assert_same_as_reference(path, 5000)
    [(_, raw, _)] = list(read_chunks(path))
    assert raw.ts_parsed == (unit != "ns" and not ends)
