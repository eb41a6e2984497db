"""JSON API v1: event ingestion (orders and bookings from a shop or CRM arrive here)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from qunflow.errors import InvalidInput
from qunflow.services.ingest import MAX_BATCH, ingest_batch
from qunflow.web.deps import require_token, workspace_of
from qunflow.web.limits import EVENTS_CAP, size_text
from qunflow.web.openapi import API_ERRORS

router = APIRouter(prefix="/api/v1", tags=["api"], responses=API_ERRORS)


@router.post("/events", summary="Ingest a batch of events",
             description=f"A JSON array (or {{\"events\": [...]}}) of at most {MAX_BATCH} events and "
             f"{size_text(EVENTS_CAP)}. "
             "Re-sent event_ids are no-ops. Invalid events are reported by index; valid ones "
             "are stored. The response is sent after the commit.")
async def post_events(request: Request, _token: str = Depends(require_token)) -> dict[str, Any]:
    body = await request.body()  # at most limits.EVENTS_CAP: the middleware refused anything larger (413)
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError) as exc:  # also: too deeply nested, integers over 4300 digits
        raise InvalidInput(f"the body is not valid JSON: {str(exc)[:200]}") from None
    engine = workspace_of(request).engine
    result = await run_in_threadpool(ingest_batch, engine, raw)
    return result.as_json()
