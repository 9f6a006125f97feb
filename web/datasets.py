"""Dataset export and annotation import through CVAT's request flow.

Export: POST .../dataset/export?format= → 202 {rq_id} → /api/requests → result_url download.
Import: POST .../annotations/?format= with Upload-Start, TUS, Upload-Finish (or one multipart
`annotation_file`) → 202 {rq_id}; the import is written as edits like any other, by the
importing user, so it shows in history and time travel.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from core.annotations import LabeledData
from core.errors import NotFound
from core.frame_visibility import for_export
from core.job_annotations import patch_annotations, replace_annotations
from core.labels import LabelSpec
from core.permissions import Action, Principal
from core.pool_annotations import import_into_task, pool_export
from core.task_data import ValidationLayout
from infra.background import Operation
from infra.ingest_jobs import task_media_dir
from infra.runtime import Runtime
from web import background_work, tus
from web.annotations import task_annotations
from web.cloud_storages import ExportTarget, export_target
from web.context import allowed, base_url, path_id, permitted, query_flag, runtime
from web.errors import BadRequest
from web.reads import fetch_all, fetch_doc
from web.responses import json_response
from workers.datasets import export_dataset, frames_of, import_annotations
from workers.formats.dataset import ImageSource, TaskDataset
from workers.formats.registry import find_exporter, find_importer, formats_json
from workers.media.library import MediaLibrary

IMPORT_MODES = ("replace", "append")


async def annotation_formats(request: Request) -> Response:
    allowed(request, Action.VIEW, "server")
    return json_response(formats_json())


# Gathering what the read side knows


async def labels_of(request: Request, task: dict[str, Any]) -> list[LabelSpec]:
    column, owner = (
        ("project_id", task["project_id"])
        if task["project_id"] is not None
        else ("task_id", task["id"])
    )
    rows = await fetch_all(
        request,
        f"SELECT doc FROM catalog_labels WHERE {column} = %s ORDER BY position",
        (owner,),
    )
    return [msgspec.convert(row[0], LabelSpec) for row in rows]


async def task_dataset(
    request: Request, target: str, ident: int, *, with_annotations: bool = True
) -> tuple[TaskDataset, dict]:
    """The task (or the job's part of it) as a TaskDataset, and the task document; without
    its annotations (an import needs only labels and frames) unless ``with_annotations``."""
    if target == "job":
        job = await fetch_doc(request, "catalog_jobs", ident, "job")
        task = await fetch_doc(request, "catalog_tasks", job["task_id"], "task")
        first, last = job["start_frame"], job["stop_frame"]
    else:
        task = await fetch_doc(request, "catalog_tasks", ident, "task")
        first, last = 0, None
    data_rows = await fetch_all(
        request, "SELECT data FROM catalog_tasks WHERE id = %s", (task["id"],)
    )
    data = data_rows[0][0]
    if data is None:
        raise BadRequest("the task has no data yet")
    deleted = frozenset(data["deleted_frames"])
    skipped = deleted
    pool = _pool_layout(data) if target != "job" else None
    if pool is not None:
        # honeypots are skipped; the pool frames carry the ground truth (manual 2.20.1)
        skipped = deleted | set(pool.honeypot_frames)
    annotations = LabeledData()
    if with_annotations:
        if target == "job":
            _, state = await run_in_threadpool(request.app.state.jobs.current, ident)
            annotations = state.as_data(0)
        else:
            annotations = await task_annotations(request, ident)
            if pool is not None:
                ground_truth = await _ground_truth_annotations(request, task["id"])
                annotations = pool_export(annotations, ground_truth, pool)
        last_frame = data["size"] - 1 if last is None else last
        annotations = for_export(annotations, deleted, last_frame)
    dataset = TaskDataset(
        name=task["name"],
        labels=await labels_of(request, task),
        frames=[f for f in frames_of(data, first, last) if f.index not in skipped],
        annotations=annotations,
        subset=task.get("subset") or "",
    )
    return dataset, {**task, "data": data}


def _pool_layout(data: dict[str, Any]) -> ValidationLayout | None:
    layout = data.get("validation")
    if layout is None or layout["mode"] != "gt_pool":
        return None
    return msgspec.convert(layout, ValidationLayout)


async def _ground_truth_annotations(request: Request, task_id: int) -> LabeledData:
    rows = await fetch_all(
        request,
        "SELECT id FROM catalog_jobs WHERE task_id = %s AND doc->>'type' = 'ground_truth'",
        (task_id,),
    )
    if not rows:
        return LabeledData()
    _, state = await run_in_threadpool(request.app.state.jobs.current, rows[0][0])
    return state.as_data(0)


# Export


async def export_start(request: Request) -> Response:
    target = _target(request)
    ident = path_id(request)
    caller = await permitted(request, Action.VIEW, target, ident)
    format_name = request.query_params.get("format") or ""
    try:
        find_exporter(format_name)
    except KeyError:
        raise BadRequest({"format": [f"Unknown format {format_name!r}"]}) from None
    save_images = query_flag(request, "save_images")
    dataset, task = await task_dataset(request, target, ident)
    destination = await export_target(request, task.get("target_storage"))
    subresource = "dataset" if save_images else "annotations"
    operation = Operation(
        type=f"export:{subresource}",
        target=target,
        task_id=task["id"],
        job_id=ident if target == "job" else None,
        project_id=task["project_id"],
        format=format_name,
        subresource=subresource,
    )
    rt = runtime(request)
    image = image_source(request.app.state.media, rt, task["id"], task["data"])
    base = base_url(request)

    async def work(rq_id: str, progress: background_work.Progress) -> background_work.Outcome:
        target_file = await run_in_threadpool(
            export_file, rt, rq_id, target, ident, subresource, format_name
        )
        warnings = await run_in_threadpool(
            export_dataset, dataset, format_name, target_file, image if save_images else None
        )
        # what the format could not carry, for whoever reads the finished request
        return await finished_export(
            destination, target_file, download_url(base, target, ident, rq_id), warnings
        )

    rq_id = await background_work.start(request, caller, operation, work)
    return json_response({"rq_id": rq_id}, status=202)


async def export_download(request: Request) -> Response:
    caller = allowed(request, Action.VIEW, _target(request))
    rq_id = request.query_params.get("rq_id") or ""
    found = await run_in_threadpool(request.app.state.requests.get, rq_id)
    if found is None or (found["owner"]["id"] != caller.id and not caller.is_superuser):
        raise NotFound("export", rq_id)
    if found["status"] != "finished":
        raise BadRequest(f"the export is {found['status']}")
    folder = export_folder(runtime(request).settings.data_dir / "exports", rq_id)
    files = sorted(folder.glob("*.zip")) if folder.exists() else []
    if not files:
        raise NotFound("export file", rq_id)
    return FileResponse(files[0], filename=files[0].name, media_type="application/zip")


async def finished_export(
    destination: ExportTarget | None, file: Path, result_url: str, warnings: list[str]
) -> background_work.Outcome:
    """The outcome of an export: a download url, or the file put into the cloud storage
    (its key said in the message, the local copy removed)."""
    if destination is None:
        return background_work.Outcome(result_url=result_url, message="; ".join(warnings))
    try:
        key = await destination.put(file)
    finally:
        await run_in_threadpool(shutil.rmtree, file.parent, True)
    return background_work.Outcome(message="; ".join([*warnings, f"uploaded as {key}"]))


def export_folder(exports: Path, rq_id: str) -> Path:
    """Where the export of a request lives; one folder per request id."""
    return exports / hashlib.sha256(rq_id.encode()).hexdigest()[:24]


def export_file(
    rt: Runtime, rq_id: str, target: str, ident: int, subresource: str, format_name: str
) -> Path:
    """A fresh path for the request's export, named as CVAT names it."""
    stamp = datetime.now(UTC).strftime("%Y_%m_%d_%H_%M_%S")
    name = f"{target}_{ident}_{subresource}_{stamp}_{format_name}.zip".lower()
    folder = export_folder(rt.settings.data_dir / "exports", rq_id)
    shutil.rmtree(folder, ignore_errors=True)
    return folder / name


def download_url(
    base: str, target: str, ident: int, rq_id: str, subresource: str = "dataset"
) -> str:
    return f"{base}/api/{target}s/{ident}/{subresource}/download?rq_id={quote(rq_id, safe='')}"


def image_source(
    library: MediaLibrary, rt: Runtime, task_id: int, data: dict[str, Any]
) -> ImageSource:
    """A task's original images by frame number, for exports with images (a video's frames
    decoded, named as CVAT names them)."""
    media = task_media_dir(rt, task_id)
    names = {frame.index: frame.name for frame in frames_of(data)}
    extension = ".png" if data.get("video") is not None else ""

    def image(index: int) -> tuple[str, bytes]:
        return names[index] + extension, library.frame(media, data, index, "original").body

    return image


def _target(request: Request) -> str:
    """The kind the path /api/<kind>s/... names: "task", "job" or "project"."""
    return request.url.path.split("/")[2].removesuffix("s")


# Import


async def annotations_upload(request: Request) -> Response:
    target = _target(request)
    ident = path_id(request)
    caller = await permitted(request, Action.ANNOTATE, target, ident)
    headers = request.headers
    if "tus-resumable" in headers:
        return await tus.create(request, caller.id, echo_name=False)
    if "upload-start" in headers and "upload-finish" not in headers:
        return json_response({}, status=202)
    format_name = request.query_params.get("format") or ""
    try:
        find_importer(format_name)
    except KeyError:
        raise BadRequest({"format": [f"Unknown input format {format_name!r}"]}) from None
    mode = request.query_params.get("import_mode") or "replace"
    if mode not in IMPORT_MODES:
        raise BadRequest({"import_mode": [f"must be one of {', '.join(IMPORT_MODES)}"]})
    source = await import_source(request, caller, "annotation_file")
    dataset, task = await task_dataset(request, target, ident, with_annotations=False)
    operation = Operation(
        type="import:annotations",
        target=target,
        task_id=task["id"],
        job_id=ident if target == "job" else None,
        project_id=task["project_id"],
        format=format_name,
        subresource="annotations",
    )
    rt = runtime(request)

    async def work(rq_id: str, progress: background_work.Progress) -> background_work.Outcome:
        try:
            data = await run_in_threadpool(import_annotations, source, format_name, dataset)
        finally:
            shutil.rmtree(source.parent, ignore_errors=True)
        progress(0.5, "Saving the imported annotations")
        command = _import_command(target, ident, caller, data, mode)
        # A command id makes the import one step of the importer's undo history.
        await rt.execute(command, caller, import_command_id())
        return background_work.Outcome(result_id=ident)

    rq_id = await background_work.start(request, caller, operation, work)
    return json_response({"rq_id": rq_id}, status=202)


def import_command_id() -> str:
    return f"import-{uuid.uuid4()}"


def _import_command(
    target: str, ident: int, caller: Principal, data: LabeledData, mode: str
) -> Any:
    if target == "job":
        if mode == "replace":
            return lambda unit: replace_annotations(unit, caller, ident, data)
        return lambda unit: patch_annotations(unit, caller, ident, "create", data)
    return lambda unit: import_into_task(unit, caller, ident, data, mode)


async def import_source(request: Request, caller: Principal, field: str) -> Path:
    """The uploaded file, moved to a private temp folder: a finished TUS upload or the
    multipart ``field``."""
    folder = Path(tempfile.mkdtemp(prefix="import-", dir=import_scratch(request)))
    filename = request.query_params.get("filename") or ""
    if tus.FILE_ID.match(filename):
        upload = tus.load(request, filename)
        if upload.user_id != caller.id or not upload.complete:
            raise BadRequest({"filename": ["the upload is not complete"]})
        target = folder / Path(upload.filename).name
        upload.path.replace(target)
        tus.remove(upload)
        return target
    form = await request.form(max_files=1)
    upload_file = form.get(field)
    if not isinstance(upload_file, UploadFile):
        shutil.rmtree(folder, ignore_errors=True)
        raise BadRequest({field: ["send the file, or upload it with TUS first"]})
    target = folder / Path(upload_file.filename or "annotations").name
    with target.open("wb") as out:
        shutil.copyfileobj(upload_file.file, out)
    return target


def import_scratch(request: Request) -> Path:
    """A folder for uploaded files on their way into an import."""
    path = runtime(request).settings.data_dir / "uploads" / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _routes() -> list[Route]:
    routes = [Route("/api/server/annotation/formats", annotation_formats, methods=["GET"])]
    for kind in ("tasks", "jobs"):
        base = f"/api/{kind}/{{id:int}}"
        routes += [
            Route(f"{base}/dataset/export", export_start, methods=["POST"]),
            Route(f"{base}/dataset/download", export_download, methods=["GET"]),
            Route(f"{base}/annotations", annotations_upload, methods=["POST"]),
            Route(f"{base}/annotations/", annotations_upload, methods=["POST"]),
            *tus.file_routes(f"{base}/annotations"),
        ]
    return routes


ROUTES = _routes()
