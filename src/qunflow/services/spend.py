"""Spend per channel per day, imported from CSV or Excel (M8).

A file is stored whole or not at all. Rows for the same channel and day within one file are added up
(ad platforms export one row per campaign); importing a channel and day again replaces it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert

from qunflow.errors import InvalidInput
from qunflow.store.tables import spend
from qunflow.workspace import Workspace

REQUIRED = ("channel", "day", "amount")
CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_AMOUNT = Decimal("1e13")


def parse_spend_row(row: dict[str, Any]) -> dict[str, Any]:
    channel = (row.get("channel") or "").strip()
    if not channel or len(channel) > 64:
        raise InvalidInput("channel is required (at most 64 characters)", zh="渠道必填(最多 64 个字符)")
    try:
        day = date.fromisoformat((row.get("day") or "").strip())
    except ValueError:
        raise InvalidInput(f"day {row.get('day')!r} is not a date like 2026-01-31",
                           zh=f"日期 {row.get('day')!r} 格式不对,应类似 2026-01-31") from None
    try:
        amount = Decimal((row.get("amount") or "").strip())
    except InvalidOperation:
        raise InvalidInput(f"amount {row.get('amount')!r} is not a number",
                           zh=f"金额 {row.get('amount')!r} 不是数字") from None
    if not amount.is_finite() or amount < 0 or amount >= MAX_AMOUNT:
        raise InvalidInput("amount must be a number from 0 to 1e13", zh="金额须为 0 到 1e13 之间的数字")
    currency = (row.get("currency") or "").strip().upper() or "CNY"
    if not CURRENCY.match(currency):
        raise InvalidInput(f"currency {row.get('currency')!r} is not a three-letter code such as CNY",
                           zh=f"币种 {row.get('currency')!r} 不是三个字母的代码(如 CNY)")
    amount = amount.quantize(Decimal("0.0001"))
    return {"channel": channel, "day": day, "amount": amount, "currency": currency}


def _decode(path: Path) -> str:
    """UTF-8 (with or without BOM), else GB18030: what Excel in a Chinese locale saves as CSV."""
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput(f"{path.name}: the file is neither UTF-8 nor GB18030 text; save it as UTF-8 CSV",
                       zh=f"{path.name}:文件既不是 UTF-8 也不是 GB18030 文本,请另存为 UTF-8 CSV")


def _csv_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    reader = csv.reader(io.StringIO(_decode(path), newline=""))
    header = [name.strip().lower() for name in next(reader, [])]

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # blank lines (a trailing empty row from Excel)
            yield reader.line_num, dict(zip(header, values, strict=False))

    return header, rows()


def _xlsx_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a file that is not a workbook
        raise InvalidInput(f"{path.name}: not a readable .xlsx workbook ({exc})",
                           zh=f"{path.name}:无法读取这个 .xlsx 工作簿({exc})") from exc
    sheet = book.worksheets[0]
    cells = sheet.iter_rows(values_only=True)
    header = [str(c).strip().lower() if c is not None else "" for c in next(cells, ())]

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for number, values in enumerate(cells, start=2):
            if all(v is None for v in values):
                continue
            row = dict(zip(header, values, strict=False))
            if isinstance(row.get("day"), datetime):  # Excel dates arrive as datetimes
                row["day"] = row["day"].date().isoformat()
            elif isinstance(row.get("day"), date):
                row["day"] = row["day"].isoformat()
            yield number, {k: "" if v is None else str(v) for k, v in row.items()}
        book.close()

    return header, rows()


def import_spend(ws: Workspace, path: Path) -> int:
    """All rows or none: every problem is reported with its line (CSV) or row (Excel) number."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise InvalidInput(f"{path.name}: spend comes as .csv or .xlsx",
                           zh=f"{path.name}:花费数据须为 .csv 或 .xlsx 文件")
    header, rows_in = _xlsx_rows(path) if suffix == ".xlsx" else _csv_rows(path)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidInput(f"{path.name}: the header lacks {', '.join(missing)} (need channel, day, amount)",
                           zh=f"{path.name}:表头缺少 {', '.join(missing)}(需要 channel、day、amount)")
    rows: dict[tuple[str, date], dict[str, Any]] = {}
    errors: list[str] = []
    errors_zh: list[str] = []
    for number, row in rows_in:
        try:
            parsed = parse_spend_row(row)
            _add(rows, parsed)
        except InvalidInput as exc:
            errors.append(f"line {number}: {exc}")
            errors_zh.append(f"第 {number} 行:{exc.text('zh')}")
    if errors:
        shown = "; ".join(errors[:10]) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")
        shown_zh = ";".join(errors_zh[:10]) + (f";另有 {len(errors) - 10} 处" if len(errors) > 10 else "")
        raise InvalidInput(f"{path.name}: nothing stored; {shown}", zh=f"{path.name}:未保存任何数据;{shown_zh}")
    with ws.engine.begin() as conn:  # replace each channel and day the file names, in one transaction
        for channel, day in rows:
            conn.execute(delete(spend).where(spend.c.channel == channel, spend.c.day == day))
        if rows:
            conn.execute(insert(spend), list(rows.values()))
    return len(rows)


def _add(rows: dict[tuple[str, date], dict[str, Any]], parsed: dict[str, Any]) -> None:
    """Add a row to the file's total for its channel and day (one currency per channel and day)."""
    key = (parsed["channel"], parsed["day"])
    known = rows.get(key)
    if known is None:
        rows[key] = parsed
        return
    if known["currency"] != parsed["currency"]:
        raise InvalidInput(f"{parsed['channel']} on {parsed['day']} has spend in both {known['currency']} "
                           f"and {parsed['currency']}",
                           zh=f"{parsed['channel']} 在 {parsed['day']} 的花费同时有 {known['currency']} 和 "
                              f"{parsed['currency']} 两种币种")
    total = known["amount"] + parsed["amount"]
    if total >= MAX_AMOUNT:
        raise InvalidInput(f"spend of {parsed['channel']} on {parsed['day']} adds up to more than 1e13",
                           zh=f"{parsed['channel']} 在 {parsed['day']} 的花费合计超过 1e13")
    known["amount"] = total
