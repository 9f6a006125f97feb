"""Performance analytics: /api/analytics/{jobs,tasks,projects,users}/{id} and CVAT's
/api/analytics/reports, read from the analytics projection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotAuthenticated, PermissionDenied
from core.permissions import Action
from projections.analytics_reads import Target, figures
from web.context import allowed, path_id, principal, query_int, runtime
from web.errors import BadRequest
from web.reads import fetch_doc
from web.responses import json_response, read_body

CATALOG_TABLES = {
    "job": "catalog_jobs",
    "task": "catalog_tasks",
    "project": "catalog_projects",
    "user": "catalog_users",
}
REPORT_WINDOW = timedelta(days=30)  # CVAT's default when no dates are given
RQ_PREFIX = "analytics:"


class ReportRequest(msgspec.Struct, forbid_unknown_fields=True):
    job_id: int | None = None
    task_id: int | None = None
    project_id: int | None = None


async def job_analytics(request: Request) -> Response:
    return await _figures_response(request, "job")


async def task_analytics(request: Request) -> Response:
    return await _figures_response(request, "task")


async def project_analytics(request: Request) -> Response:
    return await _figures_response(request, "project")


async def user_analytics(request: Request) -> Response:
    return await _figures_response(request, "user")


async def _figures_response(request: Request, target: Target) -> Response:
    ident = path_id(request)
    await _check_readable(request, target, ident)
    start = _query_date(request, "from")
    end = _query_date(request, "to")
    _check_range(start, end, "from", "to")
    return json_response(await _figures(request, target, ident, start, end))


async def reports_get(request: Request) -> Response:
    """CVAT's GET /api/analytics/reports?job_id|task_id|project_id&start_date&end_date."""
    _signed_in(request)
    ids = {name: query_int(request, f"{name}_id") for name in ("job", "task", "project")}
    target, ident = _one_target(ids)
    start = _query_date(request, "start_date")
    end = _query_date(request, "end_date")
    _check_range(start, end, "start_date", "end_date")
    if start is None and end is None:
        end = datetime.now(UTC).date()
        start = end - REPORT_WINDOW
    return await _report_response(request, target, ident, start, end, status=200)


async def reports_create(request: Request) -> Response:
    """CVAT's POST /api/analytics/reports: figures are always current, so the request is done
    as soon as it is made; `?rq_id=` answers 201 with the report."""
    _signed_in(request)
    rq_id = request.query_params.get("rq_id")
    if rq_id is None:
        body = await read_body(request, ReportRequest)
        ids = {"job": body.job_id, "task": body.task_id, "project": body.project_id}
        target, ident = _one_target(ids)
        await _check_readable(request, target, ident)
        return json_response({"rq_id": f"{RQ_PREFIX}{target}-{ident}"}, status=202)
    target, ident = _parse_rq_id(rq_id)
    return await _report_response(request, target, ident, None, None, status=201)


async def _report_response(
    request: Request, target: Target, ident: int, start: date | None, end: date | None, status: int
) -> Response:
    await _check_readable(request, target, ident)
    data = await _figures(request, target, ident, start, end)
    return json_response(cvat_report(data), status=status)


def cvat_report(data: dict[str, Any]) -> dict[str, Any]:
    """The figures in CVAT's AnalyticsReport shape (statistics with dated data series)."""
    today = datetime.now(UTC).date().isoformat()
    days = data["days"]

    def series(key: str, scale: float = 1.0) -> list[dict[str, Any]]:
        return [{"value": day[key] * scale, "date": day["date"]} for day in days]

    def one(value: float) -> list[dict[str, Any]]:
        return [{"value": value, "date": today}]

    statistics = [
        _metric(
            "objects",
            "Objects",
            "Metric shows number of added/changed/deleted objects",
            "histogram",
            {
                "created": series("created"),
                "updated": series("updated"),
                "deleted": series("deleted"),
            },
            granularity="day",
        ),
        _metric(
            "annotation_speed",
            "Annotation speed (objects per hour)",
            "Metric shows the annotation speed in objects per hour of active time",
            "histogram",
            {"object_count": series("created"), "working_time": series("active_seconds", 1 / 3600)},
            granularity="day",
            transformations=[
                {
                    "name": "annotation_speed",
                    "binary": {"left": "object_count", "operator": "/", "right": "working_time"},
                }
            ],
        ),
        _metric(
            "annotation_time",
            "Annotation time (hours)",
            "Metric shows how long the target was in progress state",
            "numeric",
            {"total_annotating_time": one((data["annotation_seconds"] or 0.0) / 3600)},
        ),
        _metric(
            "total_object_count",
            "Total Object Count",
            "Metric shows total object count, interpolated track frames counted",
            "numeric",
            {"total_object_count": one(data["total_object_count"])},
        ),
        _metric(
            "total_annotation_speed",
            "Total Annotation Speed (objects per hour)",
            "Metric shows total annotation speed, interpolated track frames counted",
            "numeric",
            {"total_annotation_speed": one(data["total_annotation_speed"])},
        ),
    ]
    return {
        "created_date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "target": data["target"],
        f"{data['target']}_id": data["id"],
        "statistics": statistics,
    }


def _metric(
    name: str,
    title: str,
    description: str,
    view: str,
    data_series: dict[str, list[dict[str, Any]]],
    *,
    granularity: str | None = None,
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "description": description,
        "granularity": granularity,
        "default_view": view,
        "data_series": data_series,
        "transformations": transformations or [],
    }


async def _figures(
    request: Request, target: Target, ident: int, start: date | None, end: date | None
) -> dict[str, Any]:
    pool = runtime(request).pool

    def read() -> dict[str, Any]:
        with pool.connection() as conn:
            return figures(conn.cursor(), target, ident, start, end)

    return await run_in_threadpool(read)


async def _check_readable(request: Request, target: Target, ident: int) -> None:
    """A caller sees the figures of what they may read; a user's own only (or an admin)."""
    caller = allowed(request, Action.VIEW, target)
    await fetch_doc(request, CATALOG_TABLES[target], ident, target)
    if target == "user" and ident != caller.id and not caller.is_superuser:
        raise PermissionDenied("only the user themselves or an admin may see their analytics")


def _signed_in(request: Request) -> None:
    if principal(request) is None:
        raise NotAuthenticated()


def _one_target(ids: dict[str, int | None]) -> tuple[Target, int]:
    given = {name: ident for name, ident in ids.items() if ident is not None}
    if not given:
        raise BadRequest({"detail": "give one of job_id, task_id or project_id"})
    if len(given) > 1:
        raise BadRequest({"detail": "give only one of job_id, task_id or project_id"})
    (name, ident), *_ = given.items()
    return name, ident  # type: ignore[return-value]


def _parse_rq_id(rq_id: str) -> tuple[Target, int]:
    kind, _, ident = rq_id.removeprefix(RQ_PREFIX).partition("-")
    if not rq_id.startswith(RQ_PREFIX) or kind not in ("job", "task", "project"):
        raise BadRequest({"rq_id": [f"{rq_id!r} is not an analytics report request"]})
    if not ident.isdigit():
        raise BadRequest({"rq_id": [f"{rq_id!r} is not an analytics report request"]})
    return kind, int(ident)  # type: ignore[return-value]


def _query_date(request: Request, name: str) -> date | None:
    """A date or date-time query parameter, as a UTC day."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest({name: [f"{raw!r} is not a date (YYYY-MM-DD) or ISO date-time"]}) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


def _check_range(start: date | None, end: date | None, start_name: str, end_name: str) -> None:
    if start is not None and end is not None and start > end:
        raise BadRequest({start_name: [f"must not be after {end_name}"]})


ROUTES = [
    Route("/api/analytics/jobs/{id:int}", job_analytics, methods=["GET"]),
    Route("/api/analytics/tasks/{id:int}", task_analytics, methods=["GET"]),
    Route("/api/analytics/projects/{id:int}", project_analytics, methods=["GET"]),
    Route("/api/analytics/users/{id:int}", user_analytics, methods=["GET"]),
    Route("/api/analytics/reports", reports_get, methods=["GET"]),
    Route("/api/analytics/reports", reports_create, methods=["POST"]),
]
