"""The Arrow path of a Parquet import (services/eventfiles_arrow.py) binds exactly what row-by-row
validation binds, or steps aside: never a different value, never a row that parse_event would refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from qunflow.domain.event_columns import validate_raw
from qunflow.services.eventfiles import parquet_raw
from qunflow.services.eventfiles_arrow import driver_columns_of, schema_fits
from qunflow.services.fileimport import import_event_file
from qunflow.store.eventlog import driver_columns
from qunflow.store.tables import events
from qunflow.workspace import Workspace

MOMENT = datetime(2026, 1, 20, 0, 30, 0, 123456, tzinfo=UTC)


def row_by_row(batch: pa.RecordBatch, postgres: bool) -> tuple[dict[str, list[Any]], int]:
    """The reference: the batch through validate_raw and driver_columns; (columns, rows refused)."""
    _lines, raw = parquet_raw(1, batch)
    valid, rejected = validate_raw(raw)
    columns = driver_columns(valid, postgres) if valid.count else {}
    return {name: values for name, values in columns.items() if values.count(None) != len(values)}, len(rejected)


def clean(n: int = 4, **extra: Any) -> pa.RecordBatch:
    table = pa.table({
        "event_id": [f"e{i}" for i in range(n)], "type": ["message", "order"] * (n // 2),
        "ts": pa.array([MOMENT + timedelta(hours=i) for i in range(n)], pa.timestamp("us", "UTC")),
        "member_id": [f"m{i}" for i in range(n)], **extra})
    return table.to_batches()[0]


def test_a_clean_batch_skips_row_by_row_work_and_binds_the_same_values() -> None:
    batch = clean(channel=["ads", "", "课程", None], group=["g1"] * 4,
                  amount=pa.array([Decimal("19.90"), None, Decimal("-3.5"), Decimal("0")], pa.decimal128(18, 2)),
                  margin=["1.5", None, "-0.25", "10000"])
    for postgres in (False, True):
        fast = driver_columns_of(batch, postgres)
        assert fast is not None
        assert fast == row_by_row(batch, postgres)[0]
    sqlite = driver_columns_of(batch, False)
    assert sqlite is not None
    assert sqlite["ts"][0] == "2026-01-20 00:30:00.123456" and sqlite["group_key"] == ["g1"] * 4
    assert sqlite["channel"] == ["ads", None, "课程", None]
    assert sqlite["amount"] == ["19.9000", None, "-3.5000", "0.0000"]


def test_a_batch_with_a_doubtful_row_goes_row_by_row() -> None:
    doubtful = [
        clean(properties=["[1]", None, None, None]),  # not an object
        clean(properties=["{'k': 1}", None, None, None]),  # not JSON
        clean(properties=['{"k": NaN}', None, None, None]),  # not strict JSON
        clean(properties=['{"k": "a\\u0000"}', None, None, None]),  # NUL
        clean(properties=['{"k": "\\ud800"}', None, None, None]),  # a lone surrogate
        clean(properties=pa.array([{"k": 1}, None, None, None])),  # a struct, not JSON text
        clean(member_id=["m1", None, "m3", "m4"]),  # neither member_id nor visitor_id
        clean(event_id=["a", "", "c", "d"]),
        clean(type=["message", "Bad", "order", "order"]),
        clean(type=["experiment_exposure", "order", "order", "order"]),
        clean(channel=["x" * 129, None, None, None]),
        clean(channel=["a\x00b", None, None, None]),
        clean(amount=["1e3", None, None, None]),
        clean(amount=["-0.0", None, None, None]),
        clean(amount=["1.23456", None, None, None]),
        clean(amount=[" 5", None, None, None]),
        clean(amount=["10000000000000", None, None, None]),
        clean(amount=pa.array([1.5, None, None, None], pa.float64())),
        clean(bogus=pa.array([None, 1, None, None], pa.int64())),
        pa.table({"event_id": ["a"], "type": ["order"], "ts": pa.array([MOMENT.replace(tzinfo=None)]),
                  "member_id": ["m"]}).to_batches()[0],
    ]
    for batch in doubtful:
        assert driver_columns_of(batch, False) is None, batch.to_pylist()


money = st.none() | st.sampled_from(["0", "1.5", "-2.25", "007.5", "+3", "1,5", "", "NaN", "abc", "9999999999999.9999",
                                     "-0.0000", "0.0001", "1.00000", "١٢"])
text = st.none() | st.sampled_from(["", "a", "课程", "x" * 128, "x" * 129, "a\x00", "m1"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(text, text, money, money), min_size=1, max_size=6))
def test_the_arrow_path_never_disagrees_with_row_by_row(rows: list[tuple[Any, ...]]) -> None:
    n = len(rows)
    members, channels, amounts, margins = (list(column) for column in zip(*rows, strict=True))
    batch = pa.table({
        "event_id": [f"e{i}" for i in range(n)], "type": ["order"] * n,
        "ts": pa.array([MOMENT] * n, pa.timestamp("ms", "UTC")).cast(pa.timestamp("ms", "Asia/Shanghai")),
        "member_id": pa.array(members, pa.string()), "channel": pa.array(channels, pa.string()),
        "amount": pa.array(amounts, pa.string()), "margin": pa.array(margins, pa.string()),
    }).to_batches()[0]
    for postgres in (False, True):
        fast = driver_columns_of(batch, postgres)
        if fast is not None:
            expected, refused = row_by_row(batch, postgres)
            assert refused == 0 and fast == expected


def test_properties_text_is_stored_as_row_by_row_stores_it() -> None:
    """JSON object text binds as the row path's json.dumps of it: spacing and escapes rewritten, duplicate keys
    merged, "" / null / {} absent; each distinct text parsed once, so repeats cost nothing."""
    texts = ['{"tier": "newbie"}', '{ "tier" :"core" }', "", None, "{}", "null", '{"名": "值", "n": [1, 2.50]}',
             '{"a": 1, "a": 2}', '{"u": "\\u00e9"}', '{"tier": "newbie"}']
    batch = pa.table({"event_id": [f"e{i}" for i in range(len(texts))], "type": ["joined"] * len(texts),
                      "ts": pa.array([MOMENT] * len(texts), pa.timestamp("us", "UTC")),
                      "member_id": ["m"] * len(texts), "properties": pa.array(texts, pa.string())}).to_batches()[0]
    for postgres in (False, True):
        fast = driver_columns_of(batch, postgres)
        assert fast is not None
        assert fast == row_by_row(batch, postgres)[0]
    assert fast["properties"] == ['{"tier": "newbie"}', '{"tier": "core"}', None, None, None, None,
                                  '{"名": "值", "n": [1, 2.5]}', '{"a": 2}', '{"u": "é"}', '{"tier": "newbie"}']


properties = st.none() | st.sampled_from(["", "{}", "null", "[]", "1", '"x"', "{", '{"k": 1}',
                                          '{"k": [1, {"j": null}]}', '{"k":1.0e2}', '{"k": NaN}',
                                          '{"k": "\\u0000"}', '{"名": "值"}', '{"k": "\\ud800"}',
                                          '{"k": 1, "k": 2}', " { } "])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(properties, min_size=1, max_size=6))
def test_the_arrow_path_never_disagrees_with_row_by_row_on_properties(texts: list[str | None]) -> None:
    n = len(texts)
    batch = pa.table({"event_id": [f"e{i}" for i in range(n)], "type": ["joined"] * n,
                      "ts": pa.array([MOMENT] * n, pa.timestamp("us", "UTC")), "member_id": ["m"] * n,
                      "properties": pa.array(texts, pa.string())}).to_batches()[0]
    for postgres in (False, True):
        fast = driver_columns_of(batch, postgres)
        if fast is not None:
            expected, refused = row_by_row(batch, postgres)
            assert refused == 0 and fast == expected


def test_schema_fits_names_the_files_the_arrow_path_takes() -> None:
    assert schema_fits(clean(amount=["1"] * 4).schema)
    assert schema_fits(clean(properties=["{}"] * 4).schema)
    assert not schema_fits(clean(properties=pa.array([{"k": 1}] * 4)).schema)
    assert not schema_fits(clean(member_id=[1, 2, 3, 4]).schema)
    assert not schema_fits(pa.schema([("event_id", pa.string()), ("ts", pa.timestamp("us"))]))


def test_a_parquet_import_stores_what_a_jsonl_import_stores(tmp_path: Path, workspace: Workspace) -> None:
    batch = clean(8, channel=["ads", "", None, "seo"] * 2, amount=["19.9", None] * 4)
    pq.write_table(pa.Table.from_batches([batch]), tmp_path / "events.parquet")
    result = import_event_file(workspace.engine, tmp_path / "events.parquet", chunk=3)
    assert (result.stored, result.errors) == (8, [])
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(events.c.event_id, events.c.ts, events.c.channel, events.c.amount)
                            .order_by(events.c.seq)).all()
    assert rows[0] == ("e0", MOMENT.replace(tzinfo=None), "ads", Decimal("19.9000"))
    assert [r.channel for r in rows[:4]] == ["ads", None, None, "seo"]
    assert [r.event_id for r in rows] == [f"e{i}" for i in range(8)]


def test_only_a_parquet_file_of_fitting_columns_skips_the_reader_process(tmp_path: Path) -> None:
    from qunflow.services.fileimport import _arrow_ready

    pq.write_table(pa.Table.from_batches([clean()]), tmp_path / "fits.parquet")
    pq.write_table(pa.Table.from_batches([clean(properties=pa.array([{"k": 1}] * 4))]), tmp_path / "other.parquet")
    (tmp_path / "events.csv").write_text("event_id,type,ts,member_id\n")
    (tmp_path / "damaged.parquet").write_bytes(b"PAR1 not really")
    assert _arrow_ready(tmp_path / "fits.parquet")
    assert not any(_arrow_ready(tmp_path / name) for name in ("other.parquet", "events.csv", "damaged.parquet"))


def test_properties_json_can_refuse_is_a_row_error_not_a_crash(tmp_path: Path, workspace: Workspace) -> None:
    """An integer over Python's 4,300 digits or nesting past the recursion limit: json.loads raises ValueError or
    RecursionError, not JSONDecodeError; the row is refused with a reason, the others stored (Parquet and CSV)."""
    huge, deep = '{"n": 1' + "0" * 5000 + "}", '{"a": ' + "[" * 3000 + "]" * 3000 + "}"
    texts = ['{"tier": "core"}', huge, deep]
    batch = pa.table({"event_id": ["p1", "p2", "p3"], "type": ["joined"] * 3,
                      "ts": pa.array([MOMENT] * 3, pa.timestamp("us", "UTC")), "member_id": ["m1", "m2", "m3"],
                      "properties": texts})
    pq.write_table(batch, tmp_path / "events.parquet")
    quoted = [text.replace('"', '""') for text in texts]
    lines = ["event_id,type,ts,member_id,properties"] + [
        f'c{i},joined,2026-01-20T00:30:00Z,m{i},"{text}"' for i, text in enumerate(quoted)]
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    for name, first in (("events.parquet", 1), ("events.csv", 2)):  # a CSV's line 1 is its header
        result = import_event_file(workspace.engine, tmp_path / name)
        assert result.stored == 1, name
        assert [(error["line"], "JSON object" in error["reason"]) for error in result.errors] == [
            (first + 1, True), (first + 2, True)], result.errors
