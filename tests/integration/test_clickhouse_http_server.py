"""The loopback ClickHouse test server answers as the HTTP interface documents, so engine tests can trust it."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.clickhouse_http import ClickHouseHTTPServer

pytest.importorskip("chdb", reason="the ClickHouse server tests need chdb: pip install -e '.[test]'")


@pytest.fixture
def http(clickhouse_server: ClickHouseHTTPServer) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{clickhouse_server.port}", auth=("default", "secret"))


def test_ping_and_a_query_in_the_url_with_its_headers(http: httpx.Client) -> None:
    assert http.get("/ping").text == "Ok.\n"
    answer = http.get("/", params={"query": "SELECT 1 + 1 AS two, 'x' AS s", "query_id": "q-1"})
    assert answer.status_code == 200 and answer.text == "2\tx\n"
    assert answer.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert answer.headers["X-ClickHouse-Query-Id"] == "q-1"
    assert json.loads(answer.headers["X-ClickHouse-Summary"])["read_rows"] == "1"


def test_post_body_after_the_query_parameter_insert_data_and_formats(http: httpx.Client) -> None:
    assert http.post("/", content="CREATE DATABASE IF NOT EXISTS proto").status_code == 200
    assert http.post("/", params={"database": "proto"},
                     content="CREATE TABLE IF NOT EXISTS t (a Int64, b String) ENGINE = MergeTree ORDER BY a"
                     ).status_code == 200
    inserted = http.post("/", params={"database": "proto", "query": "INSERT INTO t FORMAT TabSeparated"},
                         content="1\tone\n2\ttwo\n")
    assert inserted.status_code == 200 and json.loads(inserted.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    inline = http.post("/", params={"database": "proto"}, content="INSERT INTO t FORMAT CSV\n3,three\n")
    assert inline.status_code == 200 and "X-ClickHouse-Format" not in inline.headers
    rows = http.post("/", params={"database": "proto", "default_format": "JSONCompact", "query": "SELECT a, b"},
                     content="FROM t ORDER BY a")
    assert rows.headers["X-ClickHouse-Format"] == "JSONCompact"
    assert json.loads(rows.text)["data"] == [[1, "one"], [2, "two"], [3, "three"]]
    clause = http.post("/", params={"database": "proto"}, content="SELECT count() FROM t FORMAT CSV")
    assert clause.headers["X-ClickHouse-Format"] == "CSV" and clause.text == "3\n"


def test_settings_query_parameters_and_readonly_get(http: httpx.Client) -> None:
    setting = http.get("/", params={"query": "SELECT getSetting('join_use_nulls')", "join_use_nulls": "1"})
    assert setting.text == "true\n"
    assert http.get("/", params={"query": "SELECT getSetting('join_use_nulls')"}).text == "false\n"  # per query only
    bound = http.get("/", params={"query": "SELECT {n:UInt8} * 2", "param_n": "21"})
    assert bound.text == "42\n"
    write = http.get("/", params={"query": "CREATE DATABASE nope"})
    assert write.status_code == 403 and write.headers["X-ClickHouse-Exception-Code"] == "164"


def test_errors_carry_the_code_and_the_exception_text(http: httpx.Client) -> None:
    bad = http.post("/", content="SELEC 1")
    assert bad.status_code == 400 and bad.headers["X-ClickHouse-Exception-Code"] == "62"
    assert bad.text.startswith("Code: 62. DB::Exception: Syntax error")
    missing = http.post("/", content="SELECT * FROM no_such_table")
    assert missing.status_code == 404 and missing.headers["X-ClickHouse-Exception-Code"] == "60"


@pytest.mark.parametrize("credentials", [
    {"auth": ("default", "wrong")},
    {"headers": {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "wrong"}},
    {"params": {"user": "someone", "password": "secret"}},
])
def test_wrong_credentials_are_516_authentication_failed(clickhouse_server: ClickHouseHTTPServer,
                                                         credentials: dict[str, object]) -> None:
    params = {"query": "SELECT 1", **credentials.pop("params", {})}  # type: ignore[dict-item]
    answer = httpx.get(f"http://127.0.0.1:{clickhouse_server.port}/", params=params, **credentials)  # type: ignore[arg-type]
    assert answer.status_code == 403 and answer.headers["X-ClickHouse-Exception-Code"] == "516"
    assert "AUTHENTICATION_FAILED" in answer.text


def test_right_credentials_in_headers_and_no_password_at_all(clickhouse_server: ClickHouseHTTPServer) -> None:
    url = f"http://127.0.0.1:{clickhouse_server.port}/"
    ok = httpx.get(url, params={"query": "SELECT 1"}, headers={"X-ClickHouse-User": "default",
                                                               "X-ClickHouse-Key": "secret"})
    assert ok.text == "1\n"
    anonymous = httpx.get(url, params={"query": "SELECT 1"})
    assert anonymous.status_code == 401 and anonymous.headers["X-ClickHouse-Exception-Code"] == "194"
