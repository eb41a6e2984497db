"""The JSON answers to errors, one place for the app's exception handlers (web/app.py) and for the webhook
path, which answers its own errors without going through them (web/hooks.py)."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from starlette.responses import Response

from qunflow.errors import QunflowError
from qunflow.store.db import is_busy


def qunflow_error(exc: QunflowError) -> JSONResponse:
    """`{"error", "error_zh"}` with the error's HTTP status (and Retry-After when it says when to retry)."""
    headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else None
    body = {"error": str(exc)} if exc.zh is None else {"error": str(exc), "error_zh": exc.zh}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def database_busy() -> JSONResponse:
    """Busy beyond the retries of the write paths (store.db.retry_busy): "later", never a 500 for it."""
    return JSONResponse({"error": "the database is busy: try again in a few seconds",
                         "error_zh": "数据库繁忙:请几秒后再试"}, status_code=503, headers={"Retry-After": "5"})


def data_error() -> JSONResponse:
    """The database refused a value the parameter checks let through (a NUL in text on PostgreSQL, a number
    past a column's range): the caller's input, so a 400, never a 500."""
    return JSONResponse({"error": "a value in the request cannot be stored or searched for (out of range, "
                                  "or a NUL character)",
                         "error_zh": "请求中的某个值无法存储或查询(超出范围,或含 NUL 字符)"}, status_code=400)


def error_answer(exc: Exception) -> Response | None:
    """The answer the app's handlers give `exc` outside the console's pages; None for an error they raise
    again (a 500)."""
    if isinstance(exc, QunflowError):
        return qunflow_error(exc)
    if isinstance(exc, DataError):
        return data_error()
    if isinstance(exc, DBAPIError) and is_busy(exc):
        return database_busy()
    return None
