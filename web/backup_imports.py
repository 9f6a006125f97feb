"""Backups of tasks and projects: import (restoring a backup as a new task or project).

POST /api/tasks/backup/ (or /api/projects/backup/) with Upload-Start, TUS and Upload-Finish
(`?filename=` the TUS file id), a one-shot multipart `task_file` / `project_file`, or
`?location=cloud_storage&cloud_storage_id=&filename=` → 202 {rq_id}; the finished request's
`result_id` is the new task or project. The archive is read and checked whole before the
answer: a hostile or broken one is 400 and nothing is made. The new task or project is the
importer's, in the organization the request acts in; its jobs' history starts with the
import (one command restoring every job), written by the importer.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.backup_restore import restore_jobs
from core.errors import ValidationFailed
from core.labels import LabelSpec
from core.permissions import Action, Principal, check_may_create_in_organization
from core.projects import ProjectWrite, create_project
from core.tasks import create_task, delete_project, delete_task
from infra.background import Operation
from infra.buckets import Bucket
from infra.ingest_jobs import ingest_uploaded, task_media_dir, upload_dir
from infra.runtime import Runtime
from web import background_work, tus
from web.cloud_storages import import_from_bucket, usable_bucket
from web.context import allowed, runtime
from web.datasets import import_scratch, import_source
from web.errors import BadRequest
from web.project_datasets import scaled_progress
from web.responses import json_response
from web.uploads import take_bucket_files
from workers.backups.planning import TaskPlan, plan_project, plan_task, restored_task
from workers.backups.reading import (
    TaskArchive,
    extract_task_media,
    read_project_archive,
    read_task_archive,
)
from workers.formats.dataset import FormatError
from workers.ingest import record_uploads

log = structlog.get_logger(__name__)
Progress = background_work.Progress
T = TypeVar("T")


async def task_import(request: Request) -> Response:
    caller = _may_create(request, "task")
    started = await _upload_step(request, caller)
    if started is not None:
        return started
    source = await _backup_file(request, caller, "task_file")
    plan = await _checked(source, "task_file", lambda: plan_task(read_task_archive(source), None))
    buckets = await _buckets(request, source, [plan])
    rt = runtime(request)

    async def work(rq_id: str, progress: Progress) -> background_work.Outcome:
        try:
            task_id = await restore_task(rt, caller, source, plan, None, buckets, progress)
        finally:
            await run_in_threadpool(shutil.rmtree, source.parent, True)
        return background_work.Outcome(result_id=task_id)

    return await _start(request, caller, "task", work)


async def project_import(request: Request) -> Response:
    caller = _may_create(request, "project")
    started = await _upload_step(request, caller)
    if started is not None:
        return started
    source = await _backup_file(request, caller, "project_file")

    def read() -> tuple[Any, list[TaskPlan]]:
        archive = read_project_archive(source)
        return archive.meta, plan_project(archive)

    meta, plans = await _checked(source, "project_file", read)
    buckets = await _buckets(request, source, plans)
    body = ProjectWrite(name=meta.name, labels=meta.labels, bug_tracker=meta.bug_tracker)
    rt = runtime(request)

    async def work(rq_id: str, progress: Progress) -> background_work.Outcome:
        try:
            project_id = await restore_project(rt, caller, source, body, plans, buckets, progress)
        finally:
            await run_in_threadpool(shutil.rmtree, source.parent, True)
        return background_work.Outcome(result_id=project_id)

    return await _start(request, caller, "project", work)


async def restore_project(
    rt: Runtime,
    caller: Principal,
    source: Path,
    body: ProjectWrite,
    plans: list[TaskPlan],
    buckets: dict[int, Bucket],
    progress: Progress,
) -> int:
    """Makes the project, then each planned task in it; a failure removes it all again."""
    written = await rt.execute(lambda unit: create_project(unit, caller, body), caller)
    project = (written.value.project_id, list(written.value.labels))
    made: list[int] = []
    try:
        share = 1 / len(plans) if plans else 1
        for number, plan in enumerate(plans):
            step = scaled_progress(progress, number * share, share, plan.task.name)
            made.append(await restore_task(rt, caller, source, plan, project, buckets, step))
    except BaseException:
        await _undo(rt, caller, lambda unit: delete_project(unit, caller, project[0]))
        for task_id in made:
            await run_in_threadpool(_remove_files, rt, task_id)
        raise
    return project[0]


async def restore_task(
    rt: Runtime,
    caller: Principal,
    source: Path,
    plan: TaskPlan,
    project: tuple[int, list[LabelSpec]] | None,
    buckets: dict[int, Bucket],
    progress: Progress,
) -> int:
    """Makes the planned task (inside `project`, whose labels it uses, when given), its
    media from the archive (or, for a lightweight backup, from its bucket), then its jobs;
    a failure removes the task again."""
    spec = msgspec.structs.replace(plan.task, project_id=project[0] if project else None)
    written = await rt.execute(lambda unit: create_task(unit, caller, spec), caller)
    task_id = written.value.task_id
    labels = project[1] if project else list(written.value.labels)
    try:
        uploads = upload_dir(rt, task_id)
        storage_id = plan.data_request.cloud_storage_id
        if storage_id is not None:
            progress(0.0, f"Downloading {len(plan.archive.cloud_files)} files")
            await take_bucket_files(buckets[storage_id], plan.archive.cloud_files, uploads)
        progress(0.0, "Unpacking the media")
        await run_in_threadpool(_stage_media, source, plan.archive, uploads)
        await ingest_uploaded(
            rt, caller, task_id, plan.data_request, progress, placement=plan.placement
        )
        progress(0.9, "Restoring the jobs and their annotations")
        restored = restored_task(plan, labels)
        await rt.execute(lambda unit: restore_jobs(unit, caller, task_id, restored), caller)
    except BaseException:
        if project is None:  # a project's import removes the whole project instead
            await _undo(rt, caller, lambda unit: delete_task(unit, caller, task_id))
        await run_in_threadpool(_remove_files, rt, task_id)
        raise
    return task_id


def _remove_files(rt: Runtime, task_id: int) -> None:
    """The media and uploads of a task a failed import made (removing a task keeps them)."""
    shutil.rmtree(task_media_dir(rt, task_id), ignore_errors=True)
    shutil.rmtree(upload_dir(rt, task_id), ignore_errors=True)


def _stage_media(source: Path, archive: TaskArchive, target: Path) -> None:
    """The archive's media files join the task's uploaded files, in archive order."""
    target.mkdir(parents=True, exist_ok=True)
    record_uploads(target, extract_task_media(source, archive, target))


async def _undo(rt: Runtime, caller: Principal, command: Callable[[Any], object]) -> None:
    """Removes what a failed import made; the import's own error is what the caller hears."""
    try:
        await rt.execute(command, caller)
    except Exception:
        log.exception("could not remove what a failed backup import made")


async def _buckets(request: Request, source: Path, plans: list[TaskPlan]) -> dict[int, Bucket]:
    """The buckets lightweight backups take their media from, if the caller may use them."""
    wanted = {p.data_request.cloud_storage_id for p in plans if p.data_request.cloud_storage_id}
    try:
        return {ident: (await usable_bucket(request, ident))[1] for ident in wanted}
    except BaseException:
        shutil.rmtree(source.parent, ignore_errors=True)
        raise


def _may_create(request: Request, kind: str) -> Principal:
    caller = allowed(request, Action.CREATE, kind)
    check_may_create_in_organization(caller, kind)
    return caller


async def _upload_step(request: Request, caller: Principal) -> Response | None:
    """The answer to the steps before the upload is finished (TUS creation, Upload-Start)."""
    headers = request.headers
    if "tus-resumable" in headers:
        return await tus.create(request, caller.id, echo_name=False)
    if "upload-start" in headers and "upload-finish" not in headers:
        return json_response({}, status=202)
    return None


async def _backup_file(request: Request, caller: Principal, field: str) -> Path:
    """The uploaded archive (TUS or multipart `field`) or the one in a cloud storage, in a
    private folder of its own."""
    if request.query_params.get("location") != "cloud_storage":
        return await import_source(request, caller, field)
    folder = Path(tempfile.mkdtemp(prefix="import-", dir=import_scratch(request)))
    try:
        return await import_from_bucket(request, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


async def _checked(source: Path, field: str, read: Callable[[], T]) -> T:
    """`read()`'s result; a refused archive is a 400 naming why, and is removed."""
    try:
        return await run_in_threadpool(read)
    except (FormatError, ValidationFailed) as error:
        shutil.rmtree(source.parent, ignore_errors=True)
        if isinstance(error, ValidationFailed):
            raise
        raise BadRequest({field: [str(error)]}) from None
    except BaseException:
        shutil.rmtree(source.parent, ignore_errors=True)
        raise


async def _start(
    request: Request, caller: Principal, kind: str, work: background_work.Work
) -> Response:
    operation = Operation(
        type="import:backup", target=kind, subresource="backup", target_key=str(uuid.uuid4())
    )
    rq_id = await background_work.start(request, caller, operation, work)
    return json_response({"rq_id": rq_id}, status=202)


def _routes() -> list[Route]:
    routes = []
    for kind, endpoint in (("tasks", task_import), ("projects", project_import)):
        base = f"/api/{kind}/backup"
        routes += [
            Route(base, endpoint, methods=["POST"]),
            Route(f"{base}/", endpoint, methods=["POST"]),
            *tus.file_routes(base),
        ]
    return routes


ROUTES = _routes()
