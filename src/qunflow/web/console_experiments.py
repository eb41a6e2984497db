"""Console pages for experiments: the list, and one experiment's variants, conversion with 95% intervals,
the sample-ratio and data verdicts, the guardrail metrics and a plain-words conclusion (docs/experiments.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.schedule import parse_day
from qunflow.services import experiments
from qunflow.web.console_automation import _query_without_lang
from qunflow.web.deps import workspace_of
from qunflow.web.render import page

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/experiments", response_class=HTMLResponse)
async def experiments_page(request: Request) -> Response:
    rows = await run_in_threadpool(experiments.list_experiments, workspace_of(request))
    return page(request, "console_experiments.html", rows=rows, query_without_lang=_query_without_lang(request))


@router.get("/experiments/{experiment}", response_class=HTMLResponse)
async def experiment_page(request: Request, experiment: str) -> Response:
    as_of = parse_day(request.query_params.get("as_of") or None, "as_of")
    report = await run_in_threadpool(experiments.experiment_results, workspace_of(request), experiment,
                                     as_of=as_of)
    return page(request, "console_experiment.html", r=report, conclusion=experiments.conclusion,
                fmt_guardrail=experiments.format_guardrail, query_without_lang=_query_without_lang(request))
