"""What a handler needs from the request: the runtime, the caller, the server's base url."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from core.errors import NotAuthenticated, NotFound
from core.permissions import (
    Action,
    Principal,
    Resource,
    authorize,
    may_attempt,
    policy_bypassed,
)
from infra.runtime import Runtime
from infra.writer import Written
from projections.visibility import resource_of
from web.errors import BadRequest

T = TypeVar("T")


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def principal(request: Request) -> Principal | None:
    credentials = request.scope.get("state", {}).get("credentials")
    return credentials.principal if credentials is not None else None


def allowed(request: Request, action: Action, kind: str) -> Principal:
    """The caller, if `action` on this kind of resource is allowed to them at all."""
    return may_attempt(principal(request), action, kind)


async def permitted(request: Request, action: Action, kind: str, ident: int) -> Principal:
    """The caller, if they may take `action` on project, task or job `ident`: NotFound when
    they may not even see it (or it does not exist), PermissionDenied otherwise."""
    caller = may_attempt(principal(request), action, kind)
    if policy_bypassed():
        return caller
    pool = runtime(request).pool

    def load() -> Resource | None:
        with pool.connection() as conn:
            return resource_of(conn.cursor(), kind, ident)

    resource = await run_in_threadpool(load)
    if resource is None:
        raise NotFound(kind, ident)
    try:
        return authorize(caller, action, resource)
    except NotFound:
        raise NotFound(kind, ident) from None


def base_url(request: Request) -> str:
    public = runtime(request).settings.public_url
    if public:
        return public.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def path_id(request: Request, name: str = "id") -> int:
    return int(request.path_params[name])


def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest({name: [f"{raw!r} is not a whole number"]}) from None


def query_flag(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest({name: [f"{raw!r} is not true or false"]})


async def execute(request: Request, command: Any) -> Written[Any]:
    """Runs a command as the caller, under the request's Idempotency-Key if it sent one."""
    caller = principal(request)
    if caller is None:
        raise NotAuthenticated()
    command_id = request.headers.get("idempotency-key") or f"rest-{uuid.uuid4()}"
    return await runtime(request).execute(command, caller, command_id)


async def execute_authorized(
    request: Request, action: Action, kind: str, ident: int, command: Any
) -> Written[Any]:
    """Runs a command that authorizes `action` itself on the project, task or job it loads,
    with no lookup of relations before it. What it loads does not hold the people of what
    the resource contains (a job's assignee sees its task and project, and may not change
    them), so when it answers NotFound, the catalog's relations tell it from forbidden."""
    try:
        return await execute(request, command)
    except NotFound:
        await permitted(request, action, kind, ident)
        raise
