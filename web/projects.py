"""/api/projects: create, list, retrieve, update, delete."""

from __future__ import annotations

from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.label_changes import change_project
from core.permissions import Action
from core.projects import ProjectPatch, ProjectWrite, create_project
from core.tasks import delete_project
from projections.list_query import Field, ListSpec
from web.context import allowed, base_url, execute, execute_authorized, path_id, permitted
from web.pagination import Listing, list_response
from web.reads import fetch_doc
from web.representations import project_json
from web.responses import json_response, read_body

PROJECTS = Listing(
    table="catalog_projects",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "name": Field(sql.SQL("doc->>'name'"), "text"),
            "owner": Field(sql.SQL("doc->'owner'->>'username'"), "text"),
            "assignee": Field(sql.SQL("doc->'assignee'->>'username'"), "text"),
            "status": Field(sql.SQL("doc->>'status'"), "text"),
            "updated_date": Field(sql.SQL("doc->>'updated_date'"), "datetime"),
            "created_date": Field(sql.SQL("doc->>'created_date'"), "datetime"),
            "dimension": Field(sql.SQL("doc->>'dimension'"), "text"),
        },
        search_fields=("name", "owner", "assignee", "status"),
        simple_filters=("name", "owner", "assignee", "status", "dimension"),
        ordering_fields=("id", "name", "owner", "assignee", "status", "updated_date"),
    ),
    render=project_json,
    kind="project",
)


async def projects_list(request: Request) -> Response:
    allowed(request, Action.LIST, "project")
    return await list_response(request, PROJECTS)


async def project_create(request: Request) -> Response:
    caller = allowed(request, Action.CREATE, "project")
    body = await read_body(request, ProjectWrite)
    written = await execute(request, lambda unit: create_project(unit, caller, body))
    return await _project_response(request, written.value.project_id, status=201)


async def project_detail(request: Request) -> Response:
    # The read itself keeps to what the caller may see (web/reads.py): one query, not two.
    allowed(request, Action.VIEW, "project")
    return await _project_response(request, path_id(request))


async def project_update(request: Request) -> Response:
    caller = allowed(request, Action.CHANGE, "project")
    project_id = path_id(request)
    body = await read_body(request, ProjectPatch)
    await execute_authorized(
        request,
        Action.CHANGE,
        "project",
        project_id,
        lambda unit: change_project(unit, caller, project_id, body),
    )
    return await _project_response(request, project_id)


async def project_delete(request: Request) -> Response:
    caller = await permitted(request, Action.DELETE, "project", path_id(request))
    project_id = path_id(request)
    await execute(request, lambda unit: delete_project(unit, caller, project_id))
    return Response(status_code=204)


async def _project_response(request: Request, project_id: int, status: int = 200) -> Response:
    doc = await fetch_doc(request, "catalog_projects", project_id, "project")
    return json_response(project_json(doc, base_url(request)), status=status)


ROUTES = [
    Route("/api/projects", projects_list, methods=["GET"]),
    Route("/api/projects", project_create, methods=["POST"]),
    Route("/api/projects/{id:int}", project_detail, methods=["GET"]),
    Route("/api/projects/{id:int}", project_update, methods=["PATCH"]),
    Route("/api/projects/{id:int}", project_delete, methods=["DELETE"]),
]
