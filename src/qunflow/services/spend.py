"""Spend per channel per day, imported from CSV (M8)."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert

from qunflow.errors import InvalidInput
from qunflow.store.tables import spend
from qunflow.workspace import Workspace

REQUIRED = ("channel", "day", "amount")


def parse_spend_row(row: dict[str, Any]) -> dict[str, Any]:
    channel = (row.get("channel") or "").strip()
    if not channel or len(channel) > 64:
        raise InvalidInput("channel is required (at most 64 characters)")
    try:
        day = date.fromisoformat((row.get("day") or "").strip())
    except ValueError:
        raise InvalidInput(f"day {row.get('day')!r} is not a date like 2026-01-31") from None
    try:
        amount = Decimal((row.get("amount") or "").strip())
    except InvalidOperation:
        raise InvalidInput(f"amount {row.get('amount')!r} is not a number") from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e13"):
        raise InvalidInput("amount must be a number from 0 to 1e13")
    currency = (row.get("currency") or "CNY").strip().upper()[:8]
    return {"channel": channel, "day": day, "amount": amount.quantize(Decimal("0.0001")), "currency": currency}


def import_spend(ws: Workspace, path: Path) -> int:
    """All rows or none: every problem is reported with its line number."""
    rows: dict[tuple[str, date], dict[str, Any]] = {}
    errors: list[str] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(f"{path.name}: the header lacks {', '.join(missing)} (need channel, day, amount)")
        for row in reader:
            try:
                parsed = parse_spend_row(row)
            except InvalidInput as exc:
                errors.append(f"line {reader.line_num}: {exc}")
                continue
            rows[(parsed["channel"], parsed["day"])] = parsed  # a later line for the same day wins
    if errors:
        shown = "; ".join(errors[:10]) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")
        raise InvalidInput(f"{path.name}: nothing stored; {shown}")
    with ws.engine.begin() as conn:
        for channel, day in rows:
            conn.execute(delete(spend).where(spend.c.channel == channel, spend.c.day == day))
        if rows:
            conn.execute(insert(spend), list(rows.values()))
    return len(rows)
