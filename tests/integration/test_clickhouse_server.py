"""The ClickHouse server engine: shipping is resumable and idempotent, values and types match chdb, and a
server that is down, refuses the password or is misconfigured gives one clear line without the password."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from qunflow.analytics.engines import open_engine
from qunflow.analytics.shipper import ARROW_SCHEMA, ship
from qunflow.errors import InvalidInput, Unavailable
from qunflow.services.export import MEMBERS_SQL
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import metrics_report
from qunflow.settings import load_settings
from qunflow.workspace import Workspace, init_workspace
from tests.clickhouse_http import ClickHouseHTTPServer
from tests.conftest import use_clickhouse
from tests.integration.test_metrics_exact import AS_OF, END, SCENARIO, SPEND, START, load

pytest.importorskip("chdb", reason="the ClickHouse server tests need chdb: pip install -e '.[test]'")


def batch(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"event_id": f"{prefix}{i}", "type": "message", "ts": "2026-03-01T08:00:00+08:00", "member_id": "m"}
            for i in range(n)]


def on_server(ws: Workspace, server: ClickHouseHTTPServer) -> Workspace:
    return use_clickhouse(ws, server.fresh_url())


def stored(ws: Workspace) -> tuple[int, int, int, int]:
    """(rows, distinct event ids, max seq, watermark) as the metric queries see them."""
    with open_engine(ws) as engine:
        _names, rows = engine.query("SELECT count() AS n, uniqExact(event_id) AS d, max(seq) AS top FROM events", {})
        return (*rows[0], engine.watermark())


def arrow_rows(seqs: range) -> pa.Table:
    n = len(seqs)
    return pa.table([list(seqs), [f"x{s}" for s in seqs], ["message"] * n, [datetime(2026, 3, 1)] * n,
                     *[[None] * n] * 13], schema=ARROW_SCHEMA)


def test_shipping_resumes_from_the_watermark_and_never_duplicates(workspace: Workspace,
                                                                   clickhouse_server: ClickHouseHTTPServer) -> None:
    ws = on_server(workspace, clickhouse_server)
    ingest_batch(ws.engine, batch("a", 250))
    assert ship(ws, chunk=100) == 250
    assert ship(ws, chunk=100) == 0  # nothing new: idempotent
    ingest_batch(ws.engine, batch("b", 30) + batch("a", 10))  # re-sent ids are not new events
    assert ship(ws) == 30
    assert stored(ws) == (280, 280, 280, 280)


def test_a_chunk_sent_twice_or_overlapping_counts_once(workspace: Workspace,
                                                        clickhouse_server: ClickHouseHTTPServer) -> None:
    """What two shippers in two processes, or a retried insert, would do: rows collapse by seq."""
    ws = on_server(workspace, clickhouse_server)
    with open_engine(ws) as engine:
        engine.append(arrow_rows(range(1, 101)))
        engine.append(arrow_rows(range(1, 101)))
        engine.append(arrow_rows(range(51, 151)))
        assert engine.watermark() == 150
    assert stored(ws) == (150, 150, 150, 150)


def test_rows_spend_and_member_export_equal_chdbs_in_value_and_type(tmp_path: Path,
                                                                    clickhouse_server: ClickHouseHTTPServer) -> None:
    house = init_workspace(tmp_path / "chdb")
    house.settings.analytics_engine = "chdb"
    server = on_server(init_workspace(tmp_path / "server"), clickhouse_server)
    order = {"event_id": "o1", "type": "order", "ts": "2026-03-01T00:30:00+08:00", "member_id": "m1",
             "visitor_id": "v1", "channel": "ads", "campaign": "spring", "entry_point": "ep1", "group": "g1",
             "referrer_id": "m0", "amount": "1234567.8901", "margin": "-2.5", "currency": "CNY",
             "experiment": "exp", "variant": "B", "properties": {"tier": "core", "sku": "茶"}}
    results = []
    for ws in (house, server):
        load(ws, [*SCENARIO, order], SPEND)
        ship(ws)
        with open_engine(ws) as engine:
            params = {"tz": ws.settings.timezone, "conversion": ws.settings.conversion_types}
            results.append([engine.query("SELECT * FROM events ORDER BY seq", {}),
                            engine.query("SELECT * FROM spend ORDER BY channel, day", {}),
                            engine.query(MEMBERS_SQL, params)])
    assert results[0] == results[1]
    for (names, rows), (_names, their_rows) in zip(results[0], results[1], strict=True):
        assert rows, names
        for row, theirs in zip(rows, their_rows, strict=True):
            assert [type(v) for v in row] == [type(v) for v in theirs], names
    events = dict(zip(results[1][0][0], results[1][0][1][-1], strict=True))
    assert events["ts"].replace(tzinfo=None) == datetime(2026, 2, 28, 16, 30)  # UTC
    assert str(events["amount"]) == "1234567.8901" and '"茶"' in events["properties"]


def test_spend_is_swapped_in_whole_on_every_ship(workspace: Workspace, tmp_path: Path,
                                                 clickhouse_server: ClickHouseHTTPServer) -> None:
    from qunflow.services.spend import import_spend

    ws = on_server(workspace, clickhouse_server)
    path = tmp_path / "spend.csv"
    path.write_text("channel,day,amount\nads,2026-03-01,100\nads,2026-03-02,50.5\n")
    import_spend(ws, path)
    ship(ws)
    path.write_text("channel,day,amount,currency\nads,2026-03-02,70,cny\n")
    import_spend(ws, path)
    ship(ws)
    with open_engine(ws) as engine:
        assert engine.query("SELECT sum(amount) AS s, count() AS n FROM spend", {})[1] == [(170, 2)]
        leftovers = "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name LIKE 'spend_%'"
        assert engine.query(leftovers, {})[1] == [(0,)]


def report(ws: Workspace) -> dict[str, Any]:
    return metrics_report(ws, start=START, end=END, as_of=AS_OF, by="channel")


def test_a_wrong_password_is_refused_in_one_line_without_the_password(workspace: Workspace,
                                                                       clickhouse_server: ClickHouseHTTPServer) -> None:
    use_clickhouse(workspace, clickhouse_server.url(database="qf_wrong", password="hunter2-wrong"))
    load(workspace, SCENARIO)
    with pytest.raises(Unavailable) as caught:
        report(workspace)
    message = str(caught.value)
    assert "refused user 'default'" in message and f"127.0.0.1:{clickhouse_server.port}/qf_wrong" in message
    assert "hunter2" not in message and "secret" not in message and "\n" not in message
    assert caught.value.http_status == 503


def test_a_server_that_is_down_or_goes_away_is_unavailable(workspace: Workspace, tmp_path: Path) -> None:
    server = ClickHouseHTTPServer(tmp_path / "ch", password="s3cret-pw").start()
    use_clickhouse(workspace, server.fresh_url())
    load(workspace, SCENARIO, SPEND)
    try:
        assert report(workspace)["total"]["cohort_size"] == 4  # connected, client kept for the process
    finally:
        server.stop()
    for _attempt in range(2):  # the kept client fails the same way, and so does a new connection
        with pytest.raises(Unavailable, match=r"^the ClickHouse server at http://default@127\.0\.0\.1:\d+/qf_\w+ "
                                              r"is unreachable: Connection refused$") as caught:
            report(workspace)
        assert "s3cret" not in str(caught.value)
        workspace.settings.clickhouse_url = workspace.settings.clickhouse_url.replace("/qf_", "/qf_new_")


@pytest.mark.parametrize(("url", "complaint"), [
    ("ftp://default@127.0.0.1/qunflow", "http or https"),
    ("http://default:pw@127.0.0.1:port/qunflow", "port that is not a number"),
    ("http://default:pw@127.0.0.1:8123/bad-name", "letters, digits and _"),
    ("http://default:pw@127.0.0.1:8123/db?x=1", "no ?query"),
])
def test_a_malformed_url_is_refused_when_settings_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       url: str, complaint: str) -> None:
    monkeypatch.setenv("QUNFLOW_CLICKHOUSE_URL", url)
    with pytest.raises(InvalidInput, match="clickhouse_url") as caught:
        load_settings(tmp_path)
    assert complaint in str(caught.value) and "pw" not in str(caught.value)


def test_the_server_engine_without_a_url_says_what_to_set(workspace: Workspace) -> None:
    workspace.settings.analytics_engine = "clickhouse"
    with pytest.raises(InvalidInput, match="QUNFLOW_CLICKHOUSE_URL"):
        report(workspace)


def test_the_url_is_parsed_with_defaults_and_never_shows_the_password(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNFLOW_ANALYTICS_ENGINE", "clickhouse")
    monkeypatch.setenv("QUNFLOW_CLICKHOUSE_URL", "https://analyst:p%40ss@ch.example.com")
    settings = load_settings(tmp_path)
    target = settings.clickhouse
    assert (target.secure, target.host, target.port, target.user, target.password, target.database) == \
        (True, "ch.example.com", 8443, "analyst", "p@ss", "qunflow")
    assert target.where == "https://analyst@ch.example.com:8443/qunflow"
    assert "p@ss" not in repr(target) and "p%40ss" not in repr(settings)
