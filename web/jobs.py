"""/api/jobs and /api/labels: list, retrieve, update."""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound
from core.ground_truth import JobWrite, create_ground_truth_job, delete_ground_truth_job
from core.job_workflow import JobPatch, update_job
from core.label_changes import change_label
from core.labels import LabelInput
from core.permissions import Action
from core.quality_commands import finish_with_feedback
from projections.list_query import Field, ListSpec
from web import quality
from web.context import (
    allowed,
    base_url,
    execute,
    execute_authorized,
    path_id,
    permitted,
    query_int,
)
from web.errors import BadRequest
from web.pagination import Listing, list_response, unpaged
from web.reads import fetch_all, fetch_doc
from web.representations import job_json, label_json
from web.responses import json_response, read_body

JOBS = Listing(
    table="catalog_jobs",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "task_id": Field(sql.Identifier("task_id"), "int", cast=False),
            "project_id": Field(sql.SQL("doc->>'project_id'"), "int"),
            "task_name": Field(sql.SQL("doc->>'task_name'"), "text"),
            "project_name": Field(sql.SQL("doc->>'project_name'"), "text"),
            "assignee": Field(sql.SQL("doc->'assignee'->>'username'"), "text"),
            "stage": Field(sql.SQL("doc->>'stage'"), "text"),
            "state": Field(sql.SQL("doc->>'state'"), "text"),
            "type": Field(sql.SQL("doc->>'type'"), "text"),
            "dimension": Field(sql.SQL("doc->>'dimension'"), "text"),
            "mode": Field(sql.SQL("doc->>'mode'"), "text"),
            "media_type": Field(sql.SQL("doc->>'media_type'"), "text"),
            "parent_job_id": Field(sql.SQL("doc->>'parent_job_id'"), "int"),
            "frame_count": Field(sql.SQL("doc->>'frame_count'"), "int"),
            "updated_date": Field(sql.SQL("doc->>'updated_date'"), "datetime"),
        },
        search_fields=("task_name", "project_name", "assignee", "state", "stage"),
        simple_filters=(
            "task_id",
            "project_id",
            "task_name",
            "project_name",
            "assignee",
            "stage",
            "state",
            "type",
            "dimension",
            "mode",
            "media_type",
            "parent_job_id",
        ),
        ordering_fields=(
            "id",
            "task_id",
            "project_id",
            "task_name",
            "project_name",
            "assignee",
            "stage",
            "state",
            "type",
            "frame_count",
            "updated_date",
        ),
        default_order="-id",
    ),
    render=job_json,
    kind="job",
)


async def jobs_list(request: Request) -> Response:
    allowed(request, Action.LIST, "job")
    return await list_response(request, JOBS)


async def job_detail(request: Request) -> Response:
    # The read itself keeps to what the caller may see (web/reads.py): one query, not two.
    allowed(request, Action.VIEW, "job")
    return await job_response(request, path_id(request))


async def job_update(request: Request) -> Response:
    # Its assignee may set its state, others its stage and assignee: the command decides.
    caller = allowed(request, Action.VIEW, "job")
    job_id = path_id(request)
    body = await read_body(request, JobPatch)
    verdict = None
    if body.state == "completed":  # the verdict is worked out for a job the caller may see
        caller = await permitted(request, Action.VIEW, "job", job_id)
        verdict = await quality.verdict_for(request, job_id)
    if verdict is None:
        await execute_authorized(
            request, Action.VIEW, "job", job_id, lambda unit: update_job(unit, caller, job_id, body)
        )
        return json_response(job_json(await updated_job(request, job_id), base_url(request)))
    written = await execute(
        request, lambda unit: finish_with_feedback(unit, caller, job_id, body, verdict)
    )
    answer = job_json(await updated_job(request, job_id), base_url(request))
    if written.value is not None:
        answer["feedback"] = msgspec.to_builtins(written.value)
    return json_response(answer)


async def updated_job(request: Request, job_id: int) -> dict[str, Any]:
    """The job as the caller's update left it, even when the update took it out of their
    sight (a reviewer's rejection giving it back to its annotator)."""
    rows = await fetch_all(
        request, sql.SQL("SELECT doc FROM catalog_jobs WHERE id = %s"), (job_id,)
    )
    return rows[0][0]


async def job_create(request: Request) -> Response:
    body = await read_body(request, JobWrite)
    caller = allowed(request, Action.CREATE, "job")
    try:
        caller = await permitted(request, Action.CHANGE, "task", body.task_id)
    except NotFound:
        pass  # the command names the field: a task_id that does not exist is a bad request
    written = await execute(request, lambda unit: create_ground_truth_job(unit, caller, body))
    return await job_response(request, written.value.job_id, status_code=201)


async def job_delete(request: Request) -> Response:
    job_id = path_id(request)
    caller = await permitted(request, Action.DELETE, "job", job_id)
    await execute(request, lambda unit: delete_ground_truth_job(unit, caller, job_id))
    return Response(status_code=204)


async def job_response(request: Request, job_id: int, status_code: int = 200) -> Response:
    doc = await fetch_doc(request, "catalog_jobs", job_id, "job")
    return json_response(job_json(doc, base_url(request)), status=status_code)


async def labels_list(request: Request) -> Response:
    """Top-level labels of a project, a task (its project's if it has one) or a job's task."""
    allowed(request, Action.LIST, "label")
    project_id = query_int(request, "project_id")
    task_id = query_int(request, "task_id")
    job_id = query_int(request, "job_id")
    if job_id is not None:
        task_id = (await fetch_doc(request, "catalog_jobs", job_id, "job"))["task_id"]
    if task_id is not None:
        task = await fetch_doc(request, "catalog_tasks", task_id, "task")
        project_id = task["project_id"]
        if project_id is None:
            return await _labels_page(request, "task_id", task_id)
    if project_id is not None:
        await fetch_doc(request, "catalog_projects", project_id, "project")
        return await _labels_page(request, "project_id", project_id)
    raise BadRequest({"detail": "give one of project_id, task_id or job_id"})


async def _labels_page(request: Request, owner_column: str, owner_id: int) -> Response:
    query = sql.SQL("SELECT doc FROM catalog_labels WHERE {} = %s ORDER BY position").format(
        sql.Identifier(owner_column)
    )
    rows = await fetch_all(request, query, (owner_id,))
    base = base_url(request)
    name = request.query_params.get("name")
    results = [label_json(row[0], base) for row in rows if name is None or row[0]["name"] == name]
    return json_response(unpaged(results))


async def label_update(request: Request) -> Response:
    caller = allowed(request, Action.CHANGE, "label")
    label_id = path_id(request)
    change = await read_body(request, LabelInput)
    change = msgspec.structs.replace(change, id=label_id, deleted=False)
    owner = await _label_owner(request, label_id)
    await execute(request, lambda unit: change_label(unit, caller, owner, change))
    doc = await fetch_doc(request, "catalog_labels", label_id, "label")
    return json_response(label_json(doc, base_url(request)))


async def label_delete(request: Request) -> Response:
    caller = allowed(request, Action.DELETE, "label")
    label_id = path_id(request)
    owner = await _label_owner(request, label_id)
    change = LabelInput(id=label_id, deleted=True)
    await execute(request, lambda unit: change_label(unit, caller, owner, change))
    return Response(status_code=204)


async def _label_owner(request: Request, label_id: int) -> tuple[str, int]:
    rows = await fetch_all(
        request, "SELECT project_id, task_id FROM catalog_labels WHERE id = %s", (label_id,)
    )
    if not rows:
        raise NotFound("label", label_id)
    project_id, task_id = rows[0]
    return ("project", project_id) if project_id is not None else ("task", task_id)


async def label_detail(request: Request) -> Response:
    allowed(request, Action.VIEW, "label")
    doc = await fetch_doc(request, "catalog_labels", path_id(request), "label")
    return json_response(label_json(doc, base_url(request)))


ROUTES = [
    Route("/api/jobs", jobs_list, methods=["GET"]),
    Route("/api/jobs", job_create, methods=["POST"]),
    Route("/api/jobs/{id:int}", job_delete, methods=["DELETE"]),
    Route("/api/jobs/{id:int}", job_detail, methods=["GET"]),
    Route("/api/jobs/{id:int}", job_update, methods=["PATCH"]),
    Route("/api/labels", labels_list, methods=["GET"]),
    Route("/api/labels/{id:int}", label_detail, methods=["GET"]),
    Route("/api/labels/{id:int}", label_update, methods=["PATCH"]),
    Route("/api/labels/{id:int}", label_delete, methods=["DELETE"]),
]
