"""Spend import (M8): all rows or none, errors by line number, upserts per channel and day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.errors import InvalidInput
from qunflow.services.spend import import_spend
from qunflow.store.tables import spend
from qunflow.workspace import Workspace

runner = CliRunner()


def stored(ws: Workspace) -> list[tuple[str, date, Decimal, str]]:
    with ws.engine.connect() as conn:
        rows = conn.execute(select(spend.c.channel, spend.c.day, spend.c.amount, spend.c.currency)
                            .order_by(spend.c.channel, spend.c.day)).all()
    return [(c, d, Decimal(a).quantize(Decimal("0.01")), cur) for c, d, a, cur in rows]


def write(tmp_path: Path, text: str, name: str = "spend.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_rows_are_stored_with_cny_as_the_default_currency(any_workspace: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path, "channel,day,amount,currency\nads,2026-03-01,100,\nkol,2026-03-01,20.5,usd\n")
    assert import_spend(any_workspace, path) == 2
    assert stored(any_workspace) == [("ads", date(2026, 3, 1), Decimal("100.00"), "CNY"),
                                     ("kol", date(2026, 3, 1), Decimal("20.50"), "USD")]


def test_reimporting_a_channel_and_day_replaces_it_and_keeps_the_others(any_workspace: Workspace,
                                                                        tmp_path: Path) -> None:
    first = "channel,day,amount\nads,2026-03-01,100\nads,2026-03-02,50\n"
    second = "channel,day,amount\nads,2026-03-02,70\nads,2026-03-03,1\n"
    for text in (first, second, second):
        import_spend(any_workspace, write(tmp_path, text))
    assert [(d.day, a) for _c, d, a, _cur in stored(any_workspace)] == [
        (1, Decimal("100.00")), (2, Decimal("70.00")), (3, Decimal("1.00"))]


def test_rows_for_the_same_channel_and_day_in_one_file_add_up(workspace: Workspace, tmp_path: Path) -> None:
    # An ad platform's export has a row per campaign: the channel's spend that day is their sum.
    path = write(tmp_path, "channel,day,amount\nads,2026-03-01,100\nads,2026-03-01,25.25\n")
    assert import_spend(workspace, path) == 1
    assert import_spend(workspace, path) == 1  # the same file again: the same total, not double
    assert stored(workspace) == [("ads", date(2026, 3, 1), Decimal("125.25"), "CNY")]


def test_any_bad_row_stores_nothing_and_every_problem_has_its_line(workspace: Workspace,
                                                                   tmp_path: Path) -> None:
    path = write(tmp_path, "channel,day,amount,currency\n"
                           "ads,2026-03-01,100,CNY\n"  # line 2: fine
                           "ads,2026-02-30,5,CNY\n"  # line 3: no such day
                           ",2026-03-01,5,CNY\n"  # line 4: no channel
                           "ads,2026-03-04,-1,CNY\n"  # line 5: negative
                           "ads,2026-03-05,lots,CNY\n"  # line 6: not a number
                           "ads,2026-03-06,1,yuan\n"  # line 7: not a currency code
                           "tv,2026-03-07,1,CNY\ntv,2026-03-07,1,USD\n")  # line 9: two currencies
    with pytest.raises(InvalidInput) as caught:
        import_spend(workspace, path)
    message = str(caught.value)
    assert message.startswith("spend.csv: nothing stored; line 3: day '2026-02-30'")
    for line in (4, 5, 6, 7, 9):
        assert f"line {line}:" in message
    assert "line 2:" not in message and "line 8:" not in message
    assert stored(workspace) == []


def test_the_header_is_checked_before_any_row(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="the header lacks day, amount"):
        import_spend(workspace, write(tmp_path, "channel,date,cost\nads,2026-03-01,1\n"))
    with pytest.raises(InvalidInput, match=r"\.csv or \.xlsx"):
        import_spend(workspace, write(tmp_path, "channel,day,amount\n", name="spend.tsv"))


def test_excel_style_csv_is_read(workspace: Workspace, tmp_path: Path) -> None:
    # A byte-order mark, capitalised headers, CRLF, a blank last line; and GB18030 from a Chinese Excel.
    utf8 = write(tmp_path, "\ufeffChannel , Day,Amount\r\n抖音,2026-03-01,10\r\n,,\r\n", name="a.csv")
    gbk = write(tmp_path, "channel,day,amount\n小红书,2026-03-01,20\n", name="b.csv", encoding="gb18030")
    assert import_spend(workspace, utf8) == 1 and import_spend(workspace, gbk) == 1
    assert [(c, a) for c, _d, a, _cur in stored(workspace)] == [("小红书", Decimal("20.00")),
                                                                ("抖音", Decimal("10.00"))]


def test_cli_spend_import_reports_lines_on_one_error_line_and_exits_2(workspace: Workspace,
                                                                      tmp_path: Path) -> None:
    good = write(tmp_path, "channel,day,amount\nads,2026-03-01,100\n", name="good.csv")
    result = runner.invoke(app, ["spend", "import", str(good), "--workspace", str(workspace.home)])
    assert result.exit_code == 0 and "1 spend rows stored" in result.stdout
    bad = write(tmp_path, "channel,day,amount\nads,2026-03-02,1\nads,03/01/2026,1\n", name="bad.csv")
    result = runner.invoke(app, ["spend", "import", str(bad), "--workspace", str(workspace.home)])
    assert result.exit_code == 2
    assert "line 3" in result.stderr and "nothing stored" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    missing = runner.invoke(app, ["spend", "import", str(tmp_path / "nope.csv"),
                                  "--workspace", str(workspace.home)])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    assert stored(workspace) == [("ads", date(2026, 3, 1), Decimal("100.00"), "CNY")]
