"""JSON API v1: metrics with the same parameters as `qunflow metrics`."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from qunflow.domain.access import Principal
from qunflow.domain.metrics import DIMENSIONS, FILTERS
from qunflow.domain.schedule import parse_day
from qunflow.errors import InvalidInput
from qunflow.services.metrics import metrics_report
from qunflow.web.auth import narrow_group, scope
from qunflow.web.deps import workspace_of

router = APIRouter(prefix="/api/v1", tags=["api"])


def _day(request: Request, name: str) -> date | None:
    return parse_day(request.query_params.get(name), name)


@router.get("/metrics", summary="Metrics for a join cohort",
            description="Query parameters: from, to, as_of (YYYY-MM-DD, reporting time zone), "
                        f"by ({', '.join(DIMENSIONS)}); filters {', '.join(FILTERS)} narrow every metric "
                        "to members with that acquisition attribute; experiment narrows to the people exposed "
                        "to it (needed for by=variant and the variant filter). Undefined values are null.")
async def get_metrics(request: Request, who: Principal = Depends(scope("metrics:read"))) -> dict[str, Any]:
    unknown = set(request.query_params) - {"from", "to", "as_of", "by", "experiment", *FILTERS}
    if unknown:
        raise InvalidInput(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    filters = {name: request.query_params[name] for name in FILTERS if name in request.query_params}
    group = narrow_group(who, filters.get("group"))
    if group is not None:
        filters["group"] = group
    return await run_in_threadpool(
        metrics_report, workspace_of(request), start=_day(request, "from"), end=_day(request, "to"),
        as_of=_day(request, "as_of"), by=request.query_params.get("by", "none"), filters=filters,
        experiment=request.query_params.get("experiment"))
