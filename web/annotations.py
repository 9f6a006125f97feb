"""/api/jobs/{id}/annotations/ and /api/tasks/{id}/annotations/, history and time travel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.annotations import AnnotationState, LabeledData
from core.frame_visibility import visible
from core.job_annotations import clear_annotations, patch_annotations, replace_annotations
from core.jobs import Job
from core.permissions import Action
from core.task_annotations import (
    clear_task_annotations,
    patch_task_annotations,
    replace_task_annotations,
)
from web.context import allowed, base_url, execute_authorized, path_id, permitted, query_int
from web.errors import BadRequest
from web.pagination import page_links, page_params
from web.reads import fetch_all, fetch_doc
from workers.formats.tracks import closed_at

PATCH_ACTIONS = ("create", "update", "delete")
EXPORT_PARAMS = ("format", "filename", "action", "location", "cloud_storage_id")
_encoder = msgspec.json.Encoder()


class AnnotationsBody(LabeledData):
    """What GET answers: LabeledData plus the (audio) intervals CVAT 2.80 clients expect."""

    intervals: list[dict[str, Any]] = []


def annotations_response(data: LabeledData, status: int = 200) -> Response:
    body = AnnotationsBody(
        version=data.version, tags=data.tags, shapes=data.shapes, tracks=data.tracks
    )
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


def _refuse_old_export(request: Request) -> None:
    if any(name in request.query_params for name in EXPORT_PARAMS):
        raise_gone()


def raise_gone() -> None:
    raise HTTPException(
        410,
        "This endpoint no longer exports or imports; use /dataset/export and /requests.",
    )


async def _body(request: Request) -> LabeledData:
    raw = await request.body()
    return msgspec.json.decode(raw or b"{}", type=LabeledData)


def _patch_action(request: Request) -> str:
    action = request.query_params.get("action")
    if action not in PATCH_ACTIONS:
        raise BadRequest({"action": [f"must be one of {', '.join(PATCH_ACTIONS)}"]})
    return action


# Jobs


async def job_annotations_read(request: Request) -> Response:
    await permitted(request, Action.VIEW, "job", path_id(request))
    _refuse_old_export(request)
    job_id = path_id(request)
    reader = request.app.state.jobs
    at_version = query_int(request, "at_version")
    at = request.query_params.get("at")
    if at_version is not None and at:
        raise BadRequest({"at": ["give at_version or at, not both"]})
    if at:
        moment = _parse_time(at)
        at_version = await run_in_threadpool(reader.version_at, job_id, moment)
    deleted = await job_deleted_frames(request, job_id)
    if at_version is not None:
        state: AnnotationState = await run_in_threadpool(reader.at_version, job_id, at_version)
        return annotations_response(visible(state.as_data(at_version), deleted))
    version, state = await run_in_threadpool(reader.current, job_id)
    return annotations_response(visible(state.as_data(version), deleted))


async def job_deleted_frames(request: Request, job_id: int) -> frozenset[int]:
    """The deleted frames of the job's task (what its annotation reads leave out)."""
    rows = await fetch_all(
        request,
        "SELECT t.data->'deleted_frames' FROM catalog_jobs j"
        " JOIN catalog_tasks t ON t.id = j.task_id WHERE j.id = %s",
        (job_id,),
    )
    return frozenset(rows[0][0] or ()) if rows else frozenset()


async def task_deleted_frames(request: Request, task_id: int) -> frozenset[int]:
    rows = await fetch_all(
        request, "SELECT data->'deleted_frames' FROM catalog_tasks WHERE id = %s", (task_id,)
    )
    return frozenset(rows[0][0] or ()) if rows else frozenset()


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest({"at": [f"{text!r} is not an ISO 8601 time"]}) from None
    if moment.tzinfo is None:
        raise BadRequest({"at": ["give a time zone, e.g. 2026-11-25T10:00:00Z"]})
    return moment


async def job_annotations_replace(request: Request) -> Response:
    caller = allowed(request, Action.ANNOTATE, "job")
    job_id = path_id(request)
    data = await _body(request)
    written = await execute_authorized(
        request,
        Action.ANNOTATE,
        "job",
        job_id,
        lambda unit: replace_annotations(unit, caller, job_id, data),
    )
    return annotations_response(written.value)


async def job_annotations_patch(request: Request) -> Response:
    caller = allowed(request, Action.ANNOTATE, "job")
    job_id = path_id(request)
    action = _patch_action(request)
    data = await _body(request)
    written = await execute_authorized(
        request,
        Action.ANNOTATE,
        "job",
        job_id,
        lambda unit: patch_annotations(unit, caller, job_id, action, data),
    )
    return annotations_response(written.value)


async def job_annotations_delete(request: Request) -> Response:
    caller = allowed(request, Action.ANNOTATE, "job")
    job_id = path_id(request)
    await execute_authorized(
        request,
        Action.ANNOTATE,
        "job",
        job_id,
        lambda unit: clear_annotations(unit, caller, job_id),
    )
    return Response(status_code=204)


async def job_history(request: Request) -> Response:
    await permitted(request, Action.VIEW, "job", path_id(request))
    job_id = path_id(request)
    await fetch_doc(request, "catalog_jobs", job_id, "job")
    page, page_size = page_params(request)
    stream = Job.stream_id(job_id)
    counted = await fetch_all(
        request, "SELECT count(*) FROM job_history WHERE stream = %s", (stream,)
    )
    count = counted[0][0]
    limit = page_size or max(count, 1)
    rows = await fetch_all(
        request,
        "SELECT h.version, h.event_type, h.actor, u.username, h.command_id, h.recorded_at,"
        " h.objects, h.details FROM job_history h LEFT JOIN catalog_users u ON u.id = h.actor"
        " WHERE h.stream = %s ORDER BY h.version LIMIT %s OFFSET %s",
        (stream, limit, (page - 1) * limit),
    )
    results = [_history_entry(row, base_url(request)) for row in rows]
    return Response(
        _encoder.encode(page_links(request, results, count, page, limit, page_size is None)),
        media_type="application/json",
    )


def _history_entry(row: tuple[Any, ...], base: str) -> dict[str, Any]:
    version, event_type, actor, username, command_id, recorded_at, objects, details = row
    return {
        "version": version,
        "type": event_type,
        "actor": None
        if actor is None
        else {"id": actor, "username": username, "url": f"{base}/api/users/{actor}"},
        "timestamp": recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "command_id": command_id,
        "objects": objects,
        "details": details,
    }


# Tasks


async def task_annotations(request: Request, task_id: int) -> LabeledData:
    """The annotations of all the task's jobs. A job's piece of a track is closed after the
    job's last frame (but the task's), so it does not run on into the next job's frames."""
    rows = await fetch_all(
        request,
        "SELECT id, (doc->>'stop_frame')::int FROM catalog_jobs WHERE task_id = %s"
        " AND doc->>'type' <> 'ground_truth' ORDER BY id",
        (task_id,),
    )
    task_stop = max((stop for _, stop in rows), default=0)
    reader = request.app.state.jobs
    merged = LabeledData()
    for job_id, stop in rows:
        _, state = await run_in_threadpool(reader.current, job_id)
        merged.tags.extend(state.tags.values())
        merged.shapes.extend(state.shapes.values())
        merged.tracks.extend(
            state.tracks.values()
            if stop >= task_stop
            else (closed_at(track, stop) for track in state.tracks.values())
        )
    return visible(merged, await task_deleted_frames(request, task_id))


async def task_annotations_read(request: Request) -> Response:
    await permitted(request, Action.VIEW, "task", path_id(request))
    _refuse_old_export(request)
    return annotations_response(await task_annotations(request, path_id(request)))


async def task_annotations_replace(request: Request) -> Response:
    caller = allowed(request, Action.ANNOTATE, "task")
    task_id = path_id(request)
    data = await _body(request)
    written = await execute_authorized(
        request,
        Action.ANNOTATE,
        "task",
        task_id,
        lambda unit: replace_task_annotations(unit, caller, task_id, data),
    )
    return annotations_response(written.value)


async def task_annotations_patch(request: Request) -> Response:
    caller = allowed(request, Action.ANNOTATE, "task")
    task_id = path_id(request)
    action = _patch_action(request)
    data = await _body(request)
    written = await execute_authorized(
        request,
        Action.ANNOTATE,
        "task",
        task_id,
        lambda unit: patch_task_annotations(unit, caller, task_id, action, data),
    )
    return annotations_response(written.value)


async def task_annotations_delete(request: Request) -> Response:
    caller = allowed(request, Action.ANNOTATE, "task")
    task_id = path_id(request)
    await execute_authorized(
        request,
        Action.ANNOTATE,
        "task",
        task_id,
        lambda unit: clear_task_annotations(unit, caller, task_id),
    )
    return Response(status_code=204)


def _routes() -> list[Route]:
    routes = []
    for path in ("/api/jobs/{id:int}/annotations", "/api/jobs/{id:int}/annotations/"):
        routes += [
            Route(path, job_annotations_read, methods=["GET"]),
            Route(path, job_annotations_replace, methods=["PUT"]),
            Route(path, job_annotations_patch, methods=["PATCH"]),
            Route(path, job_annotations_delete, methods=["DELETE"]),
        ]
    for path in ("/api/tasks/{id:int}/annotations", "/api/tasks/{id:int}/annotations/"):
        routes += [
            Route(path, task_annotations_read, methods=["GET"]),
            Route(path, task_annotations_replace, methods=["PUT"]),
            Route(path, task_annotations_patch, methods=["PATCH"]),
            Route(path, task_annotations_delete, methods=["DELETE"]),
        ]
    routes.append(Route("/api/jobs/{id:int}/history", job_history, methods=["GET"]))
    return routes


ROUTES = _routes()
