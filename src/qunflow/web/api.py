"""JSON API v1: event ingestion (orders and bookings from a shop or CRM arrive here)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from qunflow.domain.access import Principal
from qunflow.errors import InvalidInput
from qunflow.services.ingest import MAX_BATCH, ingest_batch
from qunflow.web.auth import scope
from qunflow.web.deps import workspace_of
from qunflow.web.limits import EVENTS_CAP, size_text
from qunflow.web.openapi import API_ERRORS

# Any JSON value is taken as an event here: each is checked on its own, and the ones that are not valid
# events are reported by index in a 200 answer (the valid ones are stored).
EVENT = {"description": "An event: event_id, type, ts (ISO time) and optionally member_id, visitor_id, channel, "
                        "campaign, entry_point, group, referrer_id, amount, margin, currency, experiment, "
                        "variant, properties (an object). Instead of member_id an order may name its member by "
                        "external_id (the shop's customer id), phone or coupon (docs/members.md)."}
BATCH = {"anyOf": [{"type": "array", "maxItems": MAX_BATCH, "items": EVENT},
                   {"type": "object", "required": ["events"],
                    "properties": {"events": {"type": "array", "maxItems": MAX_BATCH, "items": EVENT}}}]}
router = APIRouter(prefix="/api/v1", tags=["api"], responses=API_ERRORS)


@router.post("/events", summary="Ingest a batch of events",
             description=f"A JSON array (or {{\"events\": [...]}}) of at most {MAX_BATCH} events and "
             f"{size_text(EVENTS_CAP)}. "
             "Re-sent event_ids are no-ops. Invalid events are reported by index; valid ones "
             "are stored. The response is sent after the commit.",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": BATCH}}}})
async def post_events(request: Request, _who: Principal = Depends(scope("events:write"))) -> dict[str, Any]:
    body = await request.body()  # at most limits.EVENTS_CAP: the middleware refused anything larger (413)
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError) as exc:  # also: too deeply nested, integers over 4300 digits
        raise InvalidInput(f"the body is not valid JSON: {str(exc)[:200]}",
                           zh=f"请求体不是有效的 JSON:{str(exc)[:200]}") from None
    ws = workspace_of(request)
    result = await run_in_threadpool(lambda: ingest_batch(ws.engine, raw, ws=ws))
    return result.as_json()
