"""Reading a task's or job's media: frames, chunks, previews and metadata."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from core.errors import NotFound
from core.permissions import Action
from core.segments import parse_frame_filter
from web import tus
from web.context import path_id, permitted, query_int, runtime
from web.errors import BadRequest
from web.reads import fetch_all, fetch_doc
from web.responses import json_response
from web.uploads import take_tus_file, task_data_upload, task_media_dir
from workers.images import build_chunk_zip, make_preview
from workers.ingest import compressed_path, original_path

QUALITIES = ("compressed", "original")


async def _task_data(request: Request, task_id: int) -> dict[str, Any]:
    rows = await fetch_all(request, "SELECT data FROM catalog_tasks WHERE id = %s", (task_id,))
    if not rows:
        raise NotFound("task", task_id)
    if rows[0][0] is None:
        raise NotFound("data of task", task_id)
    return rows[0][0]


def _quality(request: Request) -> str:
    quality = request.query_params.get("quality") or "compressed"
    if quality not in QUALITIES:
        raise BadRequest({"quality": [f"{quality!r} is not one of {', '.join(QUALITIES)}"]})
    return quality


def _frame_file(media: Path, data: dict[str, Any], frame: int, quality: str) -> Path:
    if quality == "compressed":
        return compressed_path(media, frame)
    return original_path(media, frame, data["frames"][frame]["name"])


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
    if kind == "frame":
        number = query_int(request, "number")
        if number is None or number not in frames:
            raise BadRequest(
                {"number": [f"the frame number must be in {frames.start}..{frames.stop - 1}"]}
            )
        path = _frame_file(media, data, number, quality)
        return FileResponse(path, media_type=_image_type(path))
    if kind == "chunk":
        return await _chunk_response(request, media, data, frames, quality)
    if kind == "preview":
        return await _preview_response(media, frames.start)
    raise BadRequest({"type": [f"{kind!r} is not one of frame, chunk, preview"]})


async def _chunk_response(
    request: Request, media: Path, data: dict[str, Any], frames: range, quality: str
) -> Response:
    chunk_size = data["chunk_size"]
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
    if len(members) == 0 or (index is not None and index < 0):
        raise BadRequest({"number": ["there is no such chunk"]})
    paths = [_frame_file(media, data, frame, quality) for frame in members]
    extension = ".jpeg" if quality == "compressed" else None
    names = [
        f"{frame:06d}{extension or path.suffix}" for frame, path in zip(members, paths, strict=True)
    ]
    body = await run_in_threadpool(build_chunk_zip, paths, names)
    return Response(
        body,
        media_type="application/zip",
        headers={"X-Checksum": str(_checksum(body)), "X-Updated-Date": data.get("updated", "")},
    )


def _checksum(body: bytes) -> int:
    return zlib.crc32(body[:1000], zlib.crc32(str(len(body)).encode()))


async def _preview_response(media: Path, frame: int) -> Response:
    source = compressed_path(media, frame)
    if not source.exists():
        raise NotFound("preview of frame", frame)
    body = await run_in_threadpool(make_preview, source)
    return Response(body, media_type="image/jpeg")


def _image_type(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "png": "image/png",
        "bmp": "image/bmp",
        "webp": "image/webp",
        "tif": "image/tiff",
        "tiff": "image/tiff",
    }.get(suffix, "application/octet-stream")


async def task_meta(request: Request) -> Response:
    await permitted(request, Action.VIEW, "task", path_id(request))
    task_id = path_id(request)
    data = await _task_data(request, task_id)
    return json_response(_meta(data, range(data["size"])))


async def job_meta(request: Request) -> Response:
    await permitted(request, Action.VIEW, "job", path_id(request))
    job = await fetch_doc(request, "catalog_jobs", path_id(request), "job")
    data = await _task_data(request, job["task_id"])
    return json_response(_meta(data, range(job["start_frame"], job["stop_frame"] + 1)))


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
                "related_files": 0,
                "has_related_context": False,
            }
            for frame in data["frames"][frames.start : frames.stop]
        ],
        "deleted_frames": [f for f in data["deleted_frames"] if f in frames],
        "included_frames": None,
        "chapters": None,
        "storage": data["storage"],
        "cloud_storage_id": None,
    }


async def task_preview(request: Request) -> Response:
    await permitted(request, Action.VIEW, "task", path_id(request))
    task_id = path_id(request)
    task = await fetch_doc(request, "catalog_tasks", task_id, "task")
    if task.get("data") is None:
        if request.headers.get("prefer") == "handling=empty":
            return Response(status_code=204)
        raise NotFound("preview of task", task_id)
    return await _preview_response(task_media_dir(runtime(request), task_id), 0)


async def job_preview(request: Request) -> Response:
    await permitted(request, Action.VIEW, "job", path_id(request))
    job = await fetch_doc(request, "catalog_jobs", path_id(request), "job")
    media = task_media_dir(runtime(request), job["task_id"])
    return await _preview_response(media, job["start_frame"])


ROUTES = [
    Route("/api/tasks/{id:int}/data", task_data_upload, methods=["POST"]),
    Route("/api/tasks/{id:int}/data/", task_data_upload, methods=["POST"]),
    Route("/api/tasks/{id:int}/data", task_data_read, methods=["GET"]),
    Route("/api/tasks/{id:int}/data/", task_data_read, methods=["GET"]),
    Route("/api/tasks/{id:int}/data/meta", task_meta, methods=["GET"]),
    Route("/api/tasks/{id:int}/preview", task_preview, methods=["GET"]),
    Route("/api/jobs/{id:int}/data", job_data_read, methods=["GET"]),
    Route("/api/jobs/{id:int}/data/", job_data_read, methods=["GET"]),
    Route("/api/jobs/{id:int}/data/meta", job_meta, methods=["GET"]),
    Route("/api/jobs/{id:int}/preview", job_preview, methods=["GET"]),
    *tus.file_routes("/api/tasks/{id:int}/data", on_complete=take_tus_file),
]
