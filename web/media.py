"""Reading a task's or job's media: frames, chunks, previews and metadata."""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound
from core.honeypots import set_job_frames_deleted
from core.permissions import Action
from core.segments import parse_frame_filter
from core.tasks import set_deleted_frames
from infra.ingest_jobs import task_media_dir
from web import tus
from web.context import execute, path_id, permitted, query_int, runtime
from web.errors import BadRequest
from web.reads import fetch_all, fetch_doc
from web.responses import json_response, read_body
from web.uploads import take_tus_file, task_data_upload
from workers.media.library import QUALITIES, MediaLibrary


async def _task_data(request: Request, task_id: int) -> dict[str, Any]:
    rows = await fetch_all(request, "SELECT data FROM catalog_tasks WHERE id = %s", (task_id,))
    if not rows:
        raise NotFound("task", task_id)
    if rows[0][0] is None:
        raise NotFound("data of task", task_id)
    return rows[0][0]


async def stored_task_data(request: Request, task_id: int) -> dict[str, Any] | None:
    rows = await fetch_all(request, "SELECT data FROM catalog_tasks WHERE id = %s", (task_id,))
    return rows[0][0] if rows else None


async def drop_task_media(request: Request, task_id: int, data: dict[str, Any] | None) -> None:
    """Removes a deleted task's media: its files, its cached frames and chunks, open videos."""
    media = task_media_dir(runtime(request), task_id)
    if data is not None:
        await run_in_threadpool(_library(request).forget, media, data)
    await run_in_threadpool(shutil.rmtree, media, True)


def _quality(request: Request) -> str:
    quality = request.query_params.get("quality") or "compressed"
    if quality not in QUALITIES:
        raise BadRequest({"quality": [f"{quality!r} is not one of {', '.join(QUALITIES)}"]})
    return quality


def _library(request: Request) -> MediaLibrary:
    return request.app.state.media


async def task_data_read(request: Request) -> Response:
    await permitted(request, Action.VIEW, "task", path_id(request))
    task_id = path_id(request)
    data = await _task_data(request, task_id)
    return await _media_response(request, task_id, data, range(data["size"]))


async def job_data_read(request: Request) -> Response:
    await permitted(request, Action.VIEW, "job", path_id(request))
    job = await fetch_doc(request, "catalog_jobs", path_id(request), "job")
    data = await _task_data(request, job["task_id"])
    frames = range(job["start_frame"], job["stop_frame"] + 1)
    return await _media_response(request, job["task_id"], data, frames)


async def _media_response(
    request: Request, task_id: int, data: dict[str, Any], frames: range
) -> Response:
    kind = request.query_params.get("type") or "frame"
    quality = _quality(request)
    media = task_media_dir(runtime(request), task_id)
    library = _library(request)
    if kind == "frame":
        number = query_int(request, "number")
        if number is None or number not in frames:
            raise BadRequest(
                {"number": [f"the frame number must be in {frames.start}..{frames.stop - 1}"]}
            )
        found = await run_in_threadpool(library.frame, media, data, number, quality)
        return Response(found.body, media_type=found.content_type)
    if kind == "chunk":
        members, number = _chunk_members(request, data["chunk_size"], frames)
        found = await run_in_threadpool(library.chunk, media, data, members, number, quality)
        return Response(
            found.body,
            media_type=found.content_type,
            headers={
                "X-Checksum": str(_checksum(found.body)),
                "X-Updated-Date": data.get("updated", ""),
            },
        )
    if kind == "preview":
        return await _preview_response(request, media, data, frames.start)
    if kind == "context_image":
        number = query_int(request, "number")
        if number is None or number not in frames:
            raise BadRequest(
                {"number": [f"the frame number must be in {frames.start}..{frames.stop - 1}"]}
            )
        found = await run_in_threadpool(library.context_images, media, data, number)
        if found is None:
            raise NotFound("context images of frame", number)
        return Response(found.body, media_type=found.content_type)
    raise BadRequest({"type": [f"{kind!r} is not one of frame, chunk, preview, context_image"]})


def _chunk_members(request: Request, chunk_size: int, frames: range) -> tuple[range, int | None]:
    """The task frames of the asked chunk, and its task chunk number when it is a whole one."""
    index = query_int(request, "index")
    number = query_int(request, "number")
    if index is not None and number is not None:
        raise BadRequest({"index": ["give either index or number, not both"]})
    if index is not None:
        first = frames.start + index * chunk_size
        members = range(first, min(first + chunk_size, frames.stop))
    elif number is not None:
        first = number * chunk_size
        members = range(max(first, frames.start), min(first + chunk_size, frames.stop))
    else:
        raise BadRequest({"number": ["a chunk needs its number or index"]})
    if len(members) == 0 or (index is not None and index < 0) or members.start < 0:
        raise BadRequest({"number": ["there is no such chunk"]})
    whole = members.start % chunk_size == 0 and (
        len(members) == chunk_size or members.stop == frames.stop
    )
    return members, members.start // chunk_size if whole else None


def _checksum(body: bytes) -> int:
    return zlib.crc32(body[:1000], zlib.crc32(str(len(body)).encode()))


async def _preview_response(
    request: Request, media: Path, data: dict[str, Any], frame: int
) -> Response:
    found = await run_in_threadpool(_library(request).preview, media, data, frame)
    return Response(found.body, media_type=found.content_type)


async def task_meta(request: Request) -> Response:
    await permitted(request, Action.VIEW, "task", path_id(request))
    task_id = path_id(request)
    data = await _task_data(request, task_id)
    return json_response(_meta(data, range(data["size"])))


async def job_meta(request: Request) -> Response:
    await permitted(request, Action.VIEW, "job", path_id(request))
    job = await fetch_doc(request, "catalog_jobs", path_id(request), "job")
    data = await _task_data(request, job["task_id"])
    meta = _meta(data, range(job["start_frame"], job["stop_frame"] + 1))
    validation = data.get("validation")
    if job["type"] == "ground_truth" and validation is not None:
        # a ground truth job's frames are the validation frames; its deleted ones, those left
        # out of validation (as CVAT answers)
        meta["included_frames"] = validation["frames"]
        meta["deleted_frames"] = validation["disabled_frames"]
    return json_response(meta)


class MetaPatch(msgspec.Struct):
    """CVAT's DataMetaWrite: the frames (task-relative) that are deleted; the others are not."""

    deleted_frames: list[int]


async def task_meta_update(request: Request) -> Response:
    caller = await permitted(request, Action.CHANGE, "task", path_id(request))
    task_id = path_id(request)
    body = await read_body(request, MetaPatch)
    await execute(
        request, lambda unit: set_deleted_frames(unit, caller, task_id, body.deleted_frames)
    )
    data = await _task_data(request, task_id)
    return json_response(_meta(data, range(data["size"])))


async def job_meta_update(request: Request) -> Response:
    caller = await permitted(request, Action.ANNOTATE, "job", path_id(request))
    job_id = path_id(request)
    body = await read_body(request, MetaPatch)
    await execute(
        request, lambda unit: set_job_frames_deleted(unit, caller, job_id, body.deleted_frames)
    )
    return await job_meta(request)


def _meta(data: dict[str, Any], frames: range) -> dict[str, Any]:
    step = parse_frame_filter(data["frame_filter"])
    return {
        "chunks_updated_date": data.get("updated") or "1970-01-01T00:00:00.000000Z",
        "chunk_size": data["chunk_size"],
        "size": len(frames),
        "image_quality": data["image_quality"],
        "start_frame": data["start_frame"] + frames.start * step,
        "stop_frame": data["start_frame"] + (frames.stop - 1) * step,
        "frame_filter": data["frame_filter"],
        "frames": [
            {
                "name": frame["name"],
                "width": frame["width"],
                "height": frame["height"],
                "related_files": frame.get("related_files", 0),
                "has_related_context": frame.get("related_files", 0) > 0,
            }
            for frame in _frame_entries(data, frames)
        ],
        "deleted_frames": [f for f in data["deleted_frames"] if f in frames],
        "included_frames": None,
        "chapters": None,
        "storage": data["storage"],
        "cloud_storage_id": data.get("cloud_storage_id"),
    }


def _frame_entries(data: dict[str, Any], frames: range) -> list[dict[str, Any]]:
    """One entry a frame for an image set; the one video for a video (as CVAT answers)."""
    if data.get("video") is not None:
        return data["frames"]
    return data["frames"][frames.start : frames.stop]


async def task_preview(request: Request) -> Response:
    await permitted(request, Action.VIEW, "task", path_id(request))
    task_id = path_id(request)
    task = await fetch_doc(request, "catalog_tasks", task_id, "task")
    if task.get("data") is None:
        if request.headers.get("prefer") == "handling=empty":
            return Response(status_code=204)
        raise NotFound("preview of task", task_id)
    data = await _task_data(request, task_id)
    return await _preview_response(request, task_media_dir(runtime(request), task_id), data, 0)


async def job_preview(request: Request) -> Response:
    await permitted(request, Action.VIEW, "job", path_id(request))
    job = await fetch_doc(request, "catalog_jobs", path_id(request), "job")
    media = task_media_dir(runtime(request), job["task_id"])
    data = await _task_data(request, job["task_id"])
    return await _preview_response(request, media, data, job["start_frame"])


ROUTES = [
    Route("/api/tasks/{id:int}/data", task_data_upload, methods=["POST"]),
    Route("/api/tasks/{id:int}/data/", task_data_upload, methods=["POST"]),
    Route("/api/tasks/{id:int}/data", task_data_read, methods=["GET"]),
    Route("/api/tasks/{id:int}/data/", task_data_read, methods=["GET"]),
    Route("/api/tasks/{id:int}/data/meta", task_meta, methods=["GET"]),
    Route("/api/tasks/{id:int}/data/meta", task_meta_update, methods=["PATCH"]),
    Route("/api/tasks/{id:int}/preview", task_preview, methods=["GET"]),
    Route("/api/jobs/{id:int}/data", job_data_read, methods=["GET"]),
    Route("/api/jobs/{id:int}/data/", job_data_read, methods=["GET"]),
    Route("/api/jobs/{id:int}/data/meta", job_meta, methods=["GET"]),
    Route("/api/jobs/{id:int}/data/meta", job_meta_update, methods=["PATCH"]),
    Route("/api/jobs/{id:int}/preview", job_preview, methods=["GET"]),
    *tus.file_routes("/api/tasks/{id:int}/data", on_complete=take_tus_file),
]
