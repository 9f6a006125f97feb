"""Backups of tasks and projects (CVAT's archive, workers/backups/): export.

POST /api/tasks/{id}/backup/export (or /api/projects/{id}/...) → 202 {rq_id} →
/api/requests → result_url /api/tasks/{id}/backup/download?rq_id=; with
`location=cloud_storage` the archive goes into the bucket instead. As in CVAT, backing up is
for the task's (or project's) staff: those who may change it.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.permissions import Action
from infra.background import Operation
from infra.ingest_jobs import task_media_dir
from infra.runtime import Runtime
from web import background_work
from web.cloud_storages import export_target
from web.context import base_url, path_id, permitted, query_flag, runtime
from web.datasets import download_url, export_download, export_folder, finished_export, labels_of
from web.errors import BadRequest
from web.reads import fetch_all, fetch_doc
from web.responses import json_response
from workers.backups.writing import (
    TaskContent,
    job_content,
    write_project_backup,
    write_task_backup,
)

_ODD_CHARACTERS = re.compile(r"[^\w.-]+")


async def task_export(request: Request) -> Response:
    task_id = path_id(request)
    caller = await permitted(request, Action.CHANGE, "task", task_id)
    lightweight = query_flag(request, "lightweight")
    content = await task_content(request, task_id, lightweight)
    destination = await export_target(request, content.task.get("target_storage"))
    operation = Operation(
        type="export:backup",
        target="task",
        task_id=task_id,
        project_id=content.task["project_id"],
        subresource="backup",
        lightweight=lightweight,
    )
    rt, base = runtime(request), base_url(request)
    name = content.task["name"]

    async def work(rq_id: str, progress: background_work.Progress) -> background_work.Outcome:
        target = await run_in_threadpool(backup_file, rt, rq_id, "task", name, lightweight)
        await run_in_threadpool(write_task_backup, target, content)
        url = download_url(base, "task", task_id, rq_id, "backup")
        return await finished_export(destination, target, url, [])

    rq_id = await background_work.start(request, caller, operation, work)
    return json_response({"rq_id": rq_id}, status=202)


async def project_export(request: Request) -> Response:
    project_id = path_id(request)
    caller = await permitted(request, Action.CHANGE, "project", project_id)
    lightweight = query_flag(request, "lightweight")
    project = await fetch_doc(request, "catalog_projects", project_id, "project")
    labels = await labels_of(request, {"id": None, "project_id": project_id})
    rows = await fetch_all(
        request,
        "SELECT id FROM catalog_tasks WHERE project_id = %s AND data IS NOT NULL ORDER BY id",
        (project_id,),
    )
    tasks = [await task_content(request, task_id, lightweight) for (task_id,) in rows]
    destination = await export_target(request, project.get("target_storage"))
    operation = Operation(
        type="export:backup",
        target="project",
        project_id=project_id,
        subresource="backup",
        lightweight=lightweight,
    )
    rt, base = runtime(request), base_url(request)

    async def work(rq_id: str, progress: background_work.Progress) -> background_work.Outcome:
        target = await run_in_threadpool(
            backup_file, rt, rq_id, "project", project["name"], lightweight
        )
        await run_in_threadpool(write_project_backup, target, project, labels, tasks)
        url = download_url(base, "project", project_id, rq_id, "backup")
        return await finished_export(destination, target, url, [])

    rq_id = await background_work.start(request, caller, operation, work)
    return json_response({"rq_id": rq_id}, status=202)


async def task_content(request: Request, task_id: int, lightweight: bool) -> TaskContent:
    """Everything a backup of the task holds, read now (later edits are not in it)."""
    task = await fetch_doc(request, "catalog_tasks", task_id, "task")
    [(data,)] = await fetch_all(request, "SELECT data FROM catalog_tasks WHERE id = %s", (task_id,))
    if data is None:
        raise BadRequest(f"task {task_id} has no data to back up yet")
    labels = await labels_of(request, task)
    rows = await fetch_all(
        request,
        "SELECT id FROM catalog_jobs WHERE task_id = %s ORDER BY doc->>'type' = 'ground_truth', id",
        (task_id,),
    )
    jobs = []
    for (job_id,) in rows:
        _, state = await run_in_threadpool(request.app.state.jobs.current_state, job_id)
        jobs.append(job_content(state, labels, data))
    return TaskContent(
        task=task,
        data=data,
        labels=labels,
        jobs=jobs,
        media_dir=task_media_dir(runtime(request), task_id),
        # Only media taken from a cloud storage can be left there (CVAT's rule).
        lightweight=lightweight and data.get("cloud_storage_id") is not None,
    )


def backup_file(rt: Runtime, rq_id: str, kind: str, name: str, lightweight: bool) -> Path:
    """A fresh path for the request's archive, named as CVAT names backups."""
    stamp = datetime.now(UTC).strftime("%Y_%m_%d_%H_%M_%S")
    plain = _ODD_CHARACTERS.sub("_", name).strip("_") or kind
    suffix = "-lightweight" if lightweight else ""
    folder = export_folder(rt.settings.data_dir / "exports", rq_id)
    shutil.rmtree(folder, ignore_errors=True)
    return folder / f"{kind}_{plain}_backup{suffix}_{stamp}.zip".lower()


def _routes() -> list[Route]:
    routes = []
    for kind, export in (("tasks", task_export), ("projects", project_export)):
        base = f"/api/{kind}/{{id:int}}/backup"
        routes += [
            Route(f"{base}/export", export, methods=["POST"]),
            Route(f"{base}/export/", export, methods=["POST"]),
            Route(f"{base}/download", export_download, methods=["GET"]),
        ]
    return routes


ROUTES = _routes()
