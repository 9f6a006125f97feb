"""Project datasets through CVAT's request flow.

Export: POST /api/projects/{id}/dataset/export?format=&save_images= → 202 {rq_id}; the
archive holds every task of the project that has data, subsets kept apart as the format
lays them out. Import: POST /api/projects/{id}/dataset/?format= (TUS, or multipart
`dataset_file`) → 202 {rq_id}; each subset of the archive becomes a new task of the project
with the archive's images and its annotations, all written by the importing user.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.permissions import Action, Principal
from core.task_annotations import replace_task_annotations
from core.task_data import DataRequest
from core.tasks import TaskWrite, create_task
from infra.background import Operation
from infra.ingest_jobs import ingest_uploaded, upload_dir
from infra.runtime import Runtime
from web import background_work, tus
from web.cloud_storages import export_target
from web.context import base_url, path_id, permitted, query_flag, runtime
from web.datasets import (
    download_url,
    export_download,
    export_file,
    finished_export,
    image_source,
    import_command_id,
    import_source,
    labels_of,
    task_dataset,
)
from web.errors import BadRequest
from web.reads import fetch_all, fetch_doc
from web.responses import json_response
from workers.datasets import export_project
from workers.formats.dataset import TaskDataset
from workers.formats.registry import find_exporter, find_importer
from workers.ingest import record_uploads
from workers.project_datasets import SubsetImport, prepare_import


async def export_start(request: Request) -> Response:
    project_id = path_id(request)
    caller = await permitted(request, Action.VIEW, "project", project_id)
    format_name = request.query_params.get("format") or ""
    try:
        find_exporter(format_name)
    except KeyError:
        raise BadRequest({"format": [f"Unknown format {format_name!r}"]}) from None
    save_images = query_flag(request, "save_images")
    project = await fetch_doc(request, "catalog_projects", project_id, "project")
    destination = await export_target(request, project.get("target_storage"))
    labels = await labels_of(request, {"id": None, "project_id": project_id})
    tasks = await _task_datasets(request, project_id)
    subresource = "dataset" if save_images else "annotations"
    operation = Operation(
        type=f"export:{subresource}",
        target="project",
        project_id=project_id,
        format=format_name,
        subresource=subresource,
    )
    rt = runtime(request)
    library = request.app.state.media
    data = {task_id: task_data for task_id, _, task_data in tasks}
    base = base_url(request)

    async def work(rq_id: str, progress: background_work.Progress) -> background_work.Outcome:
        target = await run_in_threadpool(
            export_file, rt, rq_id, "project", project_id, subresource, format_name
        )
        await run_in_threadpool(
            export_project,
            project["name"],
            labels,
            [(task_id, dataset) for task_id, dataset, _ in tasks],
            format_name,
            target,
            (lambda task_id: image_source(library, rt, task_id, data[task_id]))
            if save_images
            else None,
        )
        return await finished_export(
            destination, target, download_url(base, "project", project_id, rq_id), []
        )

    rq_id = await background_work.start(request, caller, operation, work)
    return json_response({"rq_id": rq_id}, status=202)


async def _task_datasets(
    request: Request, project_id: int
) -> list[tuple[int, TaskDataset, dict[str, Any]]]:
    """Each task of the project that has data, in id order, as CVAT exports them."""
    rows = await fetch_all(
        request,
        "SELECT id FROM catalog_tasks WHERE project_id = %s AND data IS NOT NULL ORDER BY id",
        (project_id,),
    )
    found = []
    for (task_id,) in rows:
        dataset, task = await task_dataset(request, "task", task_id)
        found.append((task_id, dataset, task["data"]))
    return found


async def dataset_upload(request: Request) -> Response:
    project_id = path_id(request)
    caller = await permitted(request, Action.ANNOTATE, "project", project_id)
    project = await fetch_doc(request, "catalog_projects", project_id, "project")
    owner_id = (project["owner"] or {}).get("id")  # new tasks are the project owner's, as in CVAT
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
    labels = await labels_of(request, {"id": None, "project_id": project_id})
    if not labels:
        raise BadRequest({"labels": ["the project has no labels to import annotations into"]})
    source = await import_source(request, caller, "dataset_file")
    operation = Operation(
        type="import:dataset",
        target="project",
        project_id=project_id,
        format=format_name,
        subresource="dataset",
    )
    rt = runtime(request)

    async def work(rq_id: str, progress: background_work.Progress) -> background_work.Outcome:
        staging = source.parent / "images"
        try:
            progress(0.0, "Reading the dataset")
            subsets = await run_in_threadpool(prepare_import, source, format_name, labels, staging)
            for number, subset in enumerate(subsets):
                share = 1 / len(subsets)
                step = scaled_progress(progress, number * share, share, subset.name)
                await _create_subset_task(rt, caller, project_id, owner_id, subset, step)
        finally:
            await run_in_threadpool(shutil.rmtree, source.parent, True)
        return background_work.Outcome(result_id=project_id)

    rq_id = await background_work.start(request, caller, operation, work)
    return json_response({"rq_id": rq_id}, status=202)


async def _create_subset_task(
    rt: Runtime,
    caller: Principal,
    project_id: int,
    owner_id: int | None,
    subset: SubsetImport,
    progress: background_work.Progress,
) -> int:
    """A new task of the project named after the subset, with its images and annotations;
    owned by the project's owner, as in CVAT, and written by the importing user."""
    spec = TaskWrite(name=subset.name, project_id=project_id, owner_id=owner_id, subset=subset.name)
    written = await rt.execute(lambda unit: create_task(unit, caller, spec), caller)
    task_id = written.value.task_id
    await run_in_threadpool(_stage_upload, subset, upload_dir(rt, task_id))
    progress(0.1, "Making the task's media")
    await ingest_uploaded(rt, caller, task_id, DataRequest(), progress)
    progress(0.9, "Saving the annotations")
    annotations = subset.annotations
    await rt.execute(
        lambda unit: replace_task_annotations(unit, caller, task_id, annotations),
        caller,
        import_command_id(),
    )
    return task_id


def scaled_progress(
    progress: background_work.Progress, start: float, share: float, prefix: str
) -> background_work.Progress:
    """Progress of one part of the work, reported as its share of the whole."""

    def report(fraction: float, message: str) -> None:
        progress(start + fraction * share, f"{prefix}: {message}")

    return report


def _stage_upload(subset: SubsetImport, target: Path) -> None:
    """The subset's extracted images become the task's uploaded files."""
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(subset.folder, target)
    record_uploads(target, subset.names)


def _routes() -> list[Route]:
    base = "/api/projects/{id:int}"
    return [
        Route(f"{base}/dataset/export", export_start, methods=["POST"]),
        Route(f"{base}/dataset/download", export_download, methods=["GET"]),
        Route(f"{base}/dataset", dataset_upload, methods=["POST"]),
        Route(f"{base}/dataset/", dataset_upload, methods=["POST"]),
        *tus.file_routes(f"{base}/dataset"),
    ]


ROUTES = _routes()
