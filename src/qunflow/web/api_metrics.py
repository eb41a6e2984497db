"""JSON API v1: metrics with the same parameters as `qunflow metrics`, and experiment results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from qunflow.domain.access import Principal
from qunflow.domain.metrics import DIMENSIONS, FILTERS
from qunflow.domain.schedule import parse_day
from qunflow.errors import Forbidden, InvalidInput
from qunflow.services.experiments import experiment_results
from qunflow.services.metrics import metrics_report
from qunflow.web.auth import narrow_group, scope
from qunflow.web.deps import workspace_of
from qunflow.web.openapi import API_ERRORS, Day, errors

router = APIRouter(prefix="/api/v1", tags=["api"])


# Declared with their limits, checked by the domain (a 400 that names the parameter).
Filter = Annotated[str | None, Query(json_schema_extra={"maxLength": 128},
                                     description="Only members with this acquisition attribute.")]


@router.get("/metrics", summary="Metrics for a join cohort", responses=API_ERRORS,
            description="Query parameters: from, to, as_of (YYYY-MM-DD, reporting time zone), "
                        f"by ({', '.join(DIMENSIONS)}); filters {', '.join(FILTERS)} narrow every metric "
                        "to members with that acquisition attribute; experiment narrows to the people exposed "
                        "to it (needed for by=variant and the variant filter). Undefined values are null. "
                        "Unknown parameters are refused (400).")
async def get_metrics(request: Request, who: Annotated[Principal, Depends(scope("metrics:read"))],
                      from_: Annotated[Day, Query(alias="from")] = None, to: Day = None, as_of: Day = None,
                      by: Annotated[str, Query(json_schema_extra={"enum": list(DIMENSIONS)})] = "none",
                      experiment: Annotated[str | None, Query(json_schema_extra={"maxLength": 128})] = None,
                      channel: Filter = None, campaign: Filter = None, entry_point: Filter = None,
                      group: Filter = None, tier: Filter = None, variant: Filter = None) -> dict[str, Any]:
    unknown = set(request.query_params) - {"from", "to", "as_of", "by", "experiment", *FILTERS}
    if unknown:
        raise InvalidInput(f"unknown parameter(s): {', '.join(sorted(unknown))}",
                           zh=f"未知参数:{', '.join(sorted(unknown))}")
    given = {"channel": channel, "campaign": campaign, "entry_point": entry_point, "group": group, "tier": tier,
             "variant": variant}
    filters = {name: value for name, value in given.items() if value is not None}
    narrowed = narrow_group(who, filters.get("group"))
    if narrowed is not None:
        filters["group"] = narrowed
    return await run_in_threadpool(
        metrics_report, workspace_of(request), start=parse_day(from_, "from"), end=parse_day(to, "to"),
        as_of=parse_day(as_of, "as_of"), by=by, filters=filters, experiment=experiment)


@router.get("/experiments/{name}", summary="Results of one experiment", responses={**API_ERRORS, **errors(404)},
            description="The same JSON as `qunflow experiments results NAME --format json` (docs/experiments.md): "
                        "per variant the exposed, mature and converted members and M5 with the first exposure "
                        "in place of the join; against the control the difference, its 95% interval, the "
                        "p-value and the chance to beat the control; the SRM and data verdicts. as_of: "
                        "YYYY-MM-DD in the reporting time zone (default today). Unknown parameters are refused.")
async def get_experiment(request: Request, who: Annotated[Principal, Depends(scope("metrics:read"))],
                         name: Annotated[str, Path(max_length=200)], as_of: Day = None) -> dict[str, Any]:
    unknown = set(request.query_params) - {"as_of"}
    if unknown:
        raise InvalidInput(f"unknown parameter(s): {', '.join(sorted(unknown))}",
                           zh=f"未知参数:{', '.join(sorted(unknown))}")
    if who.groups is not None:  # exposures span every group: nothing to narrow them to
        raise Forbidden("experiment results cover every group; ask an owner for access without a group limit",
                        zh="实验结果涵盖所有群:请让所有者为你开通不限群的权限")
    return await run_in_threadpool(experiment_results, workspace_of(request), name,
                                   as_of=parse_day(as_of, "as_of"))
