"""What the JSON API declares in its OpenAPI schema, and checks at the door: parameter types with the
bounds the databases can hold, the error body and the error responses of each kind of route.

Bounds live here, once, so that no route hands SQLite or PostgreSQL a number it cannot store (a 500)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel

ROW_ID_MAX = 2**31 - 1  # INTEGER ids on PostgreSQL (SQLite holds 64 bits): the smaller one rules
OFFSET_MAX = 2**31 - 1

RowId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="A row id (1 or more).")]
Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX, description="Rows to skip.")]
# The shapes the schema declares: years 1970-2999, months, days and hours in range (the calendar itself,
# such as February 30, is left to the parser).
_DATE = r"(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
DECLARED_DAY = rf"^({_DATE})?$"  # empty: not given
DECLARED_TIME = rf"^{_DATE}[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{{1,6}})?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?$"
# Declared with its pattern, checked by domain.schedule.parse_day (a 400 that names the parameter).
Day = Annotated[str | None, Query(json_schema_extra={"pattern": DECLARED_DAY},
                                  description="A local day, YYYY-MM-DD (1970 to 2999); empty: not given.")]
# Checked against its pattern at the door (422), then by domain.schedule.parse_utc_time.
UtcTime = Annotated[str | None, Query(pattern=DECLARED_TIME, description=(
    "An ISO time such as 2026-01-31T09:00:00Z (1970 to 2999); without an offset it is UTC."))]


class ErrorBody(BaseModel):
    """Every error answer of the API: what went wrong and what to fix."""

    error: str


_MEANING = {
    400: "The request is well formed but cannot be accepted (the message says why).",
    401: "No bearer token, or an unknown one.",
    403: "The token may not do this.",
    404: "No such object.",
    409: "The object is not in a state that allows this.",
    413: "The request body is larger than this address accepts.",
    422: "A parameter or the body does not match this schema.",
    429: "Too many requests: try again later.",
    503: "The database is busy for a moment: try again after Retry-After seconds.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, each with the {"error": "..."} body."""
    return {code: {"model": ErrorBody, "description": _MEANING[code]} for code in codes}


# Every /api/v1 route: a token and its scope are checked (401, 403), parameters are validated, a body may
# be too large; the database may be too busy for a moment (503, with Retry-After).
API_ERRORS = errors(400, 401, 403, 413, 422, 503)
