"""/api/requests: the status of background work (task creation, exports, imports)."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound
from core.permissions import Action
from web.context import allowed
from web.pagination import unpaged
from web.responses import json_response


async def request_detail(request: Request) -> Response:
    caller = allowed(request, Action.VIEW, "request")
    ident = unquote(request.path_params["rq_id"])
    found = await run_in_threadpool(request.app.state.requests.get, ident)
    if found is None or (found["owner"]["id"] != caller.id and not caller.is_superuser):
        raise NotFound("request", ident)
    return json_response(found)


async def requests_list(request: Request) -> Response:
    caller = allowed(request, Action.LIST, "request")
    owner = None if caller.is_superuser else caller.id
    found = await run_in_threadpool(request.app.state.requests.for_owner, owner)
    filters = {
        key: request.query_params[key]
        for key in ("status", "target", "task_id", "job_id", "project_id", "format")
        if request.query_params.get(key)
    }
    action = request.query_params.get("action")
    results = [
        item
        for item in found
        if all(str(_field(item, key)) == value for key, value in filters.items())
        and (not action or item["operation"]["type"].startswith(f"{action}:"))
    ]
    return json_response(unpaged(results))


def _field(item: dict[str, object], key: str) -> object:
    if key == "status":
        return item["status"]
    operation = item["operation"]
    assert isinstance(operation, dict)
    return operation.get(key)


async def task_status(request: Request) -> Response:
    """The deprecated pre-2.16 poll, kept for old clients."""
    caller = allowed(request, Action.VIEW, "request")
    task_id = int(request.path_params["id"])
    found = await run_in_threadpool(request.app.state.requests.for_owner, None)
    for item in found:
        operation = item["operation"]
        if operation["type"] == "create:task" and operation["task_id"] == task_id:
            if item["owner"]["id"] == caller.id or caller.is_superuser:
                return json_response(
                    {
                        "state": item["status"].capitalize(),
                        "message": item["message"],
                        "progress": item["progress"] or 0,
                    },
                    headers={"Deprecation": "true"},
                )
    return json_response({"state": "Unknown", "message": ""}, headers={"Deprecation": "true"})


ROUTES = [
    Route("/api/requests", requests_list, methods=["GET"]),
    Route("/api/requests/{rq_id:path}", request_detail, methods=["GET"]),
    Route("/api/tasks/{id:int}/status", task_status, methods=["GET"]),
]
