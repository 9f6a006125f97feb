"""CVAT's quality API: /api/quality/settings, /api/quality/reports, /api/quality/conflicts.

Settings are events on the task's stream, read back from the Task aggregate. Reports come
from the quality projection (`projections/quality.py`); POST answers from it once it has
caught up with the log.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from eventsourcing.application import AggregateNotFoundError
from psycopg import sql
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound, ValidationFailed
from core.permissions import Action, Principal
from core.quality_commands import Verdict, change_quality_settings
from core.quality_settings import QualitySettings, QualitySettingsPatch
from core.tasks import Task
from infra.background import Operation
from projections.list_query import Field, ListSpec
from projections.visibility import visible_where
from web.context import allowed, execute, path_id, permitted, query_int, runtime
from web.errors import BadRequest
from web.pagination import Listing, list_response, page_links, page_params
from web.reads import fetch_all
from web.responses import json_response, read_body

CATCH_UP_TIMEOUT = 30.0


def _doc(doc: dict[str, Any], _base: str) -> dict[str, Any]:
    return doc


REPORTS = Listing(
    table="quality_reports",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "task_id": Field(sql.Identifier("task_id"), "int", cast=False),
            "job_id": Field(sql.Identifier("job_id"), "int", cast=False),
            "target": Field(sql.Identifier("target"), "text", cast=False),
            "parent_id": Field(sql.SQL("doc->>'parent_id'"), "int"),
            "project_id": Field(sql.SQL("doc->>'project_id'"), "int"),
            "created_date": Field(sql.SQL("doc->>'created_date'"), "datetime"),
        },
        search_fields=(),
        simple_filters=("task_id", "job_id", "target", "parent_id", "project_id"),
        ordering_fields=("id", "task_id", "job_id", "target", "created_date"),
        default_order="-id",
    ),
    render=_doc,
)

CONFLICTS = Listing(
    table="quality_conflicts",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "frame": Field(sql.Identifier("frame"), "int", cast=False),
            "job_id": Field(sql.Identifier("job_id"), "int", cast=False),
            "task_id": Field(sql.Identifier("task_id"), "int", cast=False),
            "type": Field(sql.SQL("doc->>'type'"), "text"),
            "severity": Field(sql.SQL("doc->>'severity'"), "text"),
        },
        search_fields=(),
        simple_filters=("frame", "type", "severity"),
        ordering_fields=("id", "frame", "type", "severity"),
        default_order="id",
    ),
    render=_doc,
)


# --- settings ---------------------------------------------------------------------------------


def _task(request: Request, task_id: int) -> Task:
    try:
        task = runtime(request).store.repository.get(Task.stream_id(task_id))
    except AggregateNotFoundError:
        raise NotFound("quality settings", task_id) from None
    if task.deleted:
        raise NotFound("quality settings", task_id)
    return task


def settings_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.task_id,
        "task_id": task.task_id,
        "project_id": None,
        **msgspec.to_builtins(task.quality_settings),
    }


async def settings_list(request: Request) -> Response:
    caller = allowed(request, Action.VIEW, "task")
    task_id = query_int(request, "task_id")
    page, page_size = page_params(request)
    visible = visible_where("task", caller)
    query = sql.SQL("SELECT id FROM catalog_tasks WHERE {} ORDER BY id").format(visible)
    rows = await fetch_all(request, query)
    task_ids = [row[0] for row in rows if task_id is None or row[0] == task_id]
    limit = page_size or max(len(task_ids), 1)
    chosen = task_ids[(page - 1) * limit : page * limit]
    results = [settings_json(await run_in_threadpool(_task, request, t)) for t in chosen]
    return json_response(page_links(request, results, len(task_ids), page, limit, not page_size))


async def _task_exists(request: Request, task_id: int) -> bool:
    """Whether the task exists and the caller may see it."""
    try:
        await permitted(request, Action.VIEW, "task", task_id)
    except NotFound:
        return False
    return True


async def settings_detail(request: Request) -> Response:
    await permitted(request, Action.VIEW, "task", path_id(request))
    task = await run_in_threadpool(_task, request, path_id(request))
    return json_response(settings_json(task))


async def settings_update(request: Request) -> Response:
    task_id = path_id(request)
    caller = await permitted(request, Action.CHANGE, "task", task_id)
    await run_in_threadpool(_task, request, task_id)
    patch = await read_body(request, QualitySettingsPatch)
    written = await execute(
        request, lambda unit: change_quality_settings(unit, caller, task_id, patch)
    )
    settings: QualitySettings = written.value
    return json_response(
        {"id": task_id, "task_id": task_id, "project_id": None, **msgspec.to_builtins(settings)}
    )


# --- reports ----------------------------------------------------------------------------------


async def reports_list(request: Request) -> Response:
    caller = allowed(request, Action.VIEW, "task")
    return await list_response(request, REPORTS, extra_where=_of_visible_tasks(caller))


async def report_detail(request: Request) -> Response:
    allowed(request, Action.VIEW, "task")
    return json_response(await _report(request, path_id(request)))


async def _report(request: Request, report_id: int) -> dict[str, Any]:
    rows = await fetch_all(
        request, "SELECT doc, task_id FROM quality_reports WHERE id = %s", (report_id,)
    )
    if not rows:
        raise NotFound("quality report", report_id)
    await _visible_report(request, report_id, rows[0][1])
    return rows[0][0]


async def _visible_report(request: Request, report_id: int, task_id: int) -> None:
    """NotFound unless the caller may see the report's task."""
    try:
        await permitted(request, Action.VIEW, "task", task_id)
    except NotFound:
        raise NotFound("quality report", report_id) from None


def _of_visible_tasks(caller: Principal) -> sql.Composable:
    return sql.SQL("task_id IN (SELECT catalog_tasks.id FROM catalog_tasks WHERE {})").format(
        visible_where("task", caller)
    )


async def report_data(request: Request) -> Response:
    """The whole ComparisonReport: parameters, summary and every frame's result."""
    allowed(request, Action.VIEW, "task")
    report_id = path_id(request)
    rows = await fetch_all(
        request,
        "SELECT task_id, job_id, parameters, comparison FROM quality_reports WHERE id = %s",
        (report_id,),
    )
    if not rows:
        raise NotFound("quality report", report_id)
    task_id, job_id, parameters, comparison = rows[0]
    await _visible_report(request, report_id, task_id)
    if job_id is not None:
        frames = await fetch_all(
            request, "SELECT frame, doc FROM quality_frames WHERE job_id = %s ORDER BY frame",
            (job_id,),
        )  # fmt: skip
    else:
        frames = await fetch_all(
            request,
            "SELECT f.frame, f.doc FROM quality_frames f JOIN quality_reports r"
            " ON r.job_id = f.job_id WHERE r.task_id = %s ORDER BY f.frame, f.job_id",
            (task_id,),
        )
    body = {
        "parameters": parameters,
        "comparison_summary": comparison,
        "frame_results": {str(frame): doc for frame, doc in frames},
    }
    return json_response(body)


class ReportRequest(msgspec.Struct):
    task_id: int | None = None
    project_id: int | None = None


async def report_create(request: Request) -> Response:
    """CVAT's two-step creation: 202 with an rq_id, then (with ?rq_id=) 201 and the report.
    The request finishes at once: the projection already holds the report."""
    caller = allowed(request, Action.VIEW, "task")
    rq_id = request.query_params.get("rq_id")
    if rq_id:
        found = await run_in_threadpool(request.app.state.requests.get, rq_id)
        if found is None or (found["owner"]["id"] != caller.id and not caller.is_superuser):
            raise NotFound("request", rq_id)
        if found["status"] != "finished":
            return json_response({"rq_id": rq_id}, status=202)
        return json_response(await _report(request, found["result_id"]), status=201)
    body = await read_body(request, ReportRequest)
    if body.task_id is None:
        raise BadRequest({"task_id": ["give the task_id (project reports are not supported)"]})
    task_id = body.task_id
    if not await _task_exists(request, task_id):
        raise ValidationFailed.one("task_id", f'Invalid pk "{task_id}" - object does not exist.')
    await _caught_up(request)
    rows = await fetch_all(
        request,
        "SELECT id FROM quality_reports WHERE task_id = %s AND job_id IS NULL",
        (task_id,),
    )
    if not rows:
        raise ValidationFailed.one(
            "task_id", "Quality reports require a configured Ground Truth job in the task"
        )
    log = request.app.state.requests
    operation = Operation(type="calculate:quality", target="task", task_id=task_id)
    ident = await run_in_threadpool(log.open, operation, caller.id)
    await run_in_threadpool(log.finish, ident, rows[0][0])
    return json_response({"rq_id": ident}, status=202)


async def _caught_up(request: Request) -> None:
    """Waits until the quality projection has read the log as far as it reaches now."""
    state = request.app.state
    store = runtime(request).store
    target = await run_in_threadpool(store.recorder.max_notification_id)
    state.quality.nudge()
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while await run_in_threadpool(state.quality.runner.position) < (target or 0):
        if time.monotonic() > deadline:
            raise BadRequest({"detail": "quality reports are still being computed; retry"})
        await asyncio.sleep(0.05)


async def verdict_for(request: Request, job_id: int) -> Verdict | None:
    """The immediate feedback a finishing job gets: None unless its task asks for it
    (max_validations_per_job > 0) and has a configured ground truth job."""
    job = await fetch_all(request, "SELECT task_id, doc->>'type' FROM catalog_jobs WHERE id = %s",
                          (job_id,))  # fmt: skip
    if not job or job[0][1] != "annotation":
        return None
    settings = (await run_in_threadpool(_task, request, job[0][0])).quality_settings
    if settings.max_validations_per_job <= 0:
        return None
    await _caught_up(request)
    rows = await fetch_all(request, "SELECT doc FROM quality_reports WHERE job_id = %s", (job_id,))
    if not rows:
        return None
    frames = await fetch_all(
        request,
        "SELECT DISTINCT frame FROM quality_conflicts WHERE job_id = %s"
        " AND doc->>'severity' = 'error' ORDER BY frame",
        (job_id,),
    )
    return Verdict(
        target_metric=settings.target_metric,
        target_metric_threshold=settings.target_metric_threshold,
        score=float(rows[0][0]["summary"][settings.target_metric]),
        frames_to_fix=[row[0] for row in frames],
        max_validations=settings.max_validations_per_job,
    )


async def conflicts_list(request: Request) -> Response:
    caller = allowed(request, Action.VIEW, "task")
    report_id = query_int(request, "report_id")
    if report_id is None:
        where, params = _conflict_scope(request)
        where = sql.SQL("{} AND {}").format(where, _of_visible_tasks(caller))
        return await list_response(request, CONFLICTS, extra_where=where, extra_params=params)
    rows = await fetch_all(
        request, "SELECT task_id, job_id FROM quality_reports WHERE id = %s", (report_id,)
    )
    if not rows:
        raise NotFound("quality report", report_id)
    task_id, job_id = rows[0]
    await _visible_report(request, report_id, task_id)
    where: sql.Composable = (
        sql.SQL("job_id = %s") if job_id is not None else sql.SQL("task_id = %s")
    )
    params = (job_id if job_id is not None else task_id,)
    return await list_response(request, CONFLICTS, extra_where=where, extra_params=params)


def _conflict_scope(request: Request) -> tuple[sql.Composable, tuple[Any, ...]]:
    job_id = query_int(request, "job_id")
    task_id = query_int(request, "task_id")
    if job_id is not None:
        return sql.SQL("job_id = %s"), (job_id,)
    if task_id is not None:
        return sql.SQL("task_id = %s"), (task_id,)
    return sql.SQL("TRUE"), ()


ROUTES = [
    Route("/api/quality/settings", settings_list, methods=["GET"]),
    Route("/api/quality/settings/{id:int}", settings_detail, methods=["GET"]),
    Route("/api/quality/settings/{id:int}", settings_update, methods=["PATCH", "PUT"]),
    Route("/api/quality/reports", reports_list, methods=["GET"]),
    Route("/api/quality/reports", report_create, methods=["POST"]),
    Route("/api/quality/reports/{id:int}", report_detail, methods=["GET"]),
    Route("/api/quality/reports/{id:int}/data", report_data, methods=["GET"]),
    Route("/api/quality/conflicts", conflicts_list, methods=["GET"]),
]
