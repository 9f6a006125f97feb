"""/api/tasks: create, list, retrieve, update, delete."""

from __future__ import annotations

from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.label_changes import change_task
from core.permissions import Action
from core.tasks import TaskPatch, TaskWrite, create_task, delete_task
from projections.list_query import Field, ListSpec
from web import media
from web.context import allowed, base_url, execute, execute_authorized, path_id, permitted
from web.pagination import Listing, list_response
from web.reads import fetch_doc
from web.representations import task_json
from web.responses import json_response, read_body

TASKS = Listing(
    table="catalog_tasks",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "project_id": Field(sql.Identifier("project_id"), "int", cast=False),
            "name": Field(sql.SQL("doc->>'name'"), "text"),
            "owner": Field(sql.SQL("doc->'owner'->>'username'"), "text"),
            "assignee": Field(sql.SQL("doc->'assignee'->>'username'"), "text"),
            "status": Field(sql.SQL("doc->>'status'"), "text"),
            "mode": Field(sql.SQL("doc->>'mode'"), "text"),
            "dimension": Field(sql.SQL("doc->>'dimension'"), "text"),
            "subset": Field(sql.SQL("doc->>'subset'"), "text"),
            "project_name": Field(sql.SQL("doc->>'project_name'"), "text"),
            "tracker_link": Field(sql.SQL("doc->>'bug_tracker'"), "text"),
            "validation_mode": Field(sql.SQL("doc->>'validation_mode'"), "text"),
            "updated_date": Field(sql.SQL("doc->>'updated_date'"), "datetime"),
            "created_date": Field(sql.SQL("doc->>'created_date'"), "datetime"),
        },
        search_fields=("name", "owner", "assignee", "status", "mode", "project_name", "subset"),
        simple_filters=(
            "project_id",
            "name",
            "owner",
            "assignee",
            "status",
            "mode",
            "dimension",
            "subset",
            "project_name",
            "tracker_link",
            "validation_mode",
        ),
        ordering_fields=(
            "id",
            "name",
            "owner",
            "assignee",
            "status",
            "project_id",
            "project_name",
            "subset",
            "mode",
            "dimension",
            "updated_date",
            "created_date",
        ),
    ),
    render=task_json,
    kind="task",
)


async def tasks_list(request: Request) -> Response:
    allowed(request, Action.LIST, "task")
    return await list_response(request, TASKS)


async def task_create(request: Request) -> Response:
    caller = allowed(request, Action.CREATE, "task")
    body = await read_body(request, TaskWrite)
    written = await execute(request, lambda unit: create_task(unit, caller, body))
    return await task_response(request, written.value.task_id, status=201)


async def task_detail(request: Request) -> Response:
    # The read itself keeps to what the caller may see (web/reads.py): one query, not two.
    allowed(request, Action.VIEW, "task")
    return await task_response(request, path_id(request))


async def task_update(request: Request) -> Response:
    caller = allowed(request, Action.CHANGE, "task")
    task_id = path_id(request)
    body = await read_body(request, TaskPatch)
    await execute_authorized(
        request,
        Action.CHANGE,
        "task",
        task_id,
        lambda unit: change_task(unit, caller, task_id, body),
    )
    return await task_response(request, task_id)


async def task_delete(request: Request) -> Response:
    caller = await permitted(request, Action.DELETE, "task", path_id(request))
    task_id = path_id(request)
    data = await media.stored_task_data(request, task_id)
    await execute(request, lambda unit: delete_task(unit, caller, task_id))
    # The events keep the history; the media of a deleted task is not needed to read it.
    await media.drop_task_media(request, task_id, data)
    return Response(status_code=204)


async def task_response(request: Request, task_id: int, status: int = 200) -> Response:
    doc = await fetch_doc(request, "catalog_tasks", task_id, "task")
    return json_response(task_json(doc, base_url(request)), status=status)


ROUTES = [
    Route("/api/tasks", tasks_list, methods=["GET"]),
    Route("/api/tasks", task_create, methods=["POST"]),
    Route("/api/tasks/{id:int}", task_detail, methods=["GET"]),
    Route("/api/tasks/{id:int}", task_update, methods=["PATCH"]),
    Route("/api/tasks/{id:int}", task_delete, methods=["DELETE"]),
]
