"""Making a task's data from its uploaded (or share) files: the ingest job, run by a worker
fed from the work queue or, without NATS, beside the server's event loop.

A job may run more than once (a worker that dies is replaced and the job redelivered), so
it never consumes its inputs: it works on a linked copy of the upload folder, makes the
media in a staging folder, publishes it and records it on the task in one event; the
uploads are removed only once the task has its data.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog
from starlette.concurrency import run_in_threadpool

from core.permissions import Principal
from core.task_data import DataRequest
from core.task_validation import attach_validated_data
from core.validation_layout import PoolPlacement
from infra.background import Outcome, RequestLog, run_request
from infra.runtime import Runtime
from infra.work_queue import Handler
from workers.ingest import ingest_media
from workers.share import stage_share_files

log = structlog.get_logger(__name__)
Progress = Callable[[float, str], None]


class IngestJob(msgspec.Struct):
    """What a worker needs to make a task's data (the message of `<prefix>.ingest`)."""

    rq_id: str
    task_id: int
    caller: Principal
    data_request: DataRequest
    share_files: dict[str, str] = {}  # frame name -> checked path in the share


def ingest_handler(rt: Runtime, requests: RequestLog, attempts: int) -> Handler:
    """Runs the ingest jobs a worker takes from the queue under their requests."""

    async def handle(message: bytes, attempt: int) -> None:
        try:
            job = msgspec.json.decode(message, type=IngestJob)
        except msgspec.MsgspecError:
            log.error("an unreadable ingest job was dropped", message=message[:200])
            return
        if attempt > 1:  # an earlier run stopped midway: its staging folders are litter
            await run_in_threadpool(clear_leftovers, rt, job.task_id)
        if attempt > attempts:
            reason = (
                f"Gave up after {attempts} attempt(s): each time the worker making the task's"
                " data stopped before finishing (killed, or out of memory?). Please upload again."
            )
            await run_in_threadpool(requests.fail, job.rq_id, reason)
            return
        await run_in_threadpool(requests.claim, job.rq_id)

        async def work(progress: Progress) -> Outcome:
            await run_ingest(rt, job, progress)
            return Outcome(result_id=job.task_id)

        await run_request(requests, job.rq_id, work)

    return handle


def clear_leftovers(rt: Runtime, task_id: int) -> None:
    """Removes the staging and working folders of interrupted ingests of the task."""
    for leftover in (
        *(rt.media_dir / "tasks").glob(f".{task_id}-*"),
        *upload_dir(rt, task_id).parent.glob(f".task_{task_id}-*"),
    ):
        shutil.rmtree(leftover, ignore_errors=True)


def upload_dir(rt: Runtime, task_id: int) -> Path:
    return rt.settings.data_dir / "uploads" / f"task_{task_id}"


def task_media_dir(rt: Runtime, task_id: int) -> Path:
    return rt.media_dir / "tasks" / str(task_id)


def task_has_data(rt: Runtime, task_id: int) -> bool:
    with rt.pool.connection() as conn:
        row = conn.execute(
            "SELECT data IS NOT NULL FROM catalog_tasks WHERE id = %s", (task_id,)
        ).fetchone()
    return bool(row and row[0])


async def run_ingest(rt: Runtime, job: IngestJob, progress: Progress) -> None:
    """Makes the job's task data; nothing when an earlier run of it got that far."""
    if await run_in_threadpool(task_has_data, rt, job.task_id):
        return
    uploads = upload_dir(rt, job.task_id)
    work = uploads.with_name(f".{uploads.name}-{secrets.token_hex(4)}")
    try:
        await run_in_threadpool(_link_tree, uploads, work)
        if job.share_files:
            copying = f"Copying {len(job.share_files)} file(s) from the share"
            await run_in_threadpool(progress, 0.0, copying)
            files = {name: Path(path) for name, path in job.share_files.items()}
            await run_in_threadpool(stage_share_files, files, work)
        await ingest_uploaded(rt, job.caller, job.task_id, job.data_request, progress, work)
    finally:
        await run_in_threadpool(shutil.rmtree, work, True)


def _link_tree(source: Path, target: Path) -> None:
    """`target` gets a hard link of every file under `source` (none if it is missing)."""
    target.mkdir(parents=True)
    if not source.is_dir():
        return
    for folder, _, names in os.walk(source):
        into = target / Path(folder).relative_to(source)
        into.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.link(Path(folder) / name, into / name)


async def ingest_uploaded(
    rt: Runtime,
    caller: Principal,
    task_id: int,
    data_request: DataRequest,
    progress: Progress,
    files: Path | None = None,
    placement: PoolPlacement | None = None,
) -> None:
    """Makes the media from `files` (default: the task's upload folder, consumed) in a
    staging folder, publishes it, then records it on the task (with the validation pool
    `placement` gives, for a backup's)."""
    staging = rt.media_dir / "tasks" / f".{task_id}-{secrets.token_hex(4)}"
    final = task_media_dir(rt, task_id)
    source = upload_dir(rt, task_id) if files is None else files
    try:
        data_id = await run_in_threadpool(rt.ids.next, "data")
        data = await run_in_threadpool(
            lambda: ingest_media(
                source,
                staging,
                data_request,
                data_id=data_id,
                seed=secrets.randbits(32),
                progress=progress,
            )
        )
        if data_request.cloud_storage_id is not None:
            data = msgspec.structs.replace(
                data, storage="cloud_storage", cloud_storage_id=data_request.cloud_storage_id
            )
        elif data_request.server_files:
            data = msgspec.structs.replace(data, storage="share")
        await run_in_threadpool(_publish_media, staging, final)
        try:
            await rt.execute(
                lambda unit: attach_validated_data(
                    unit, caller, task_id, data, data_request.validation_params, placement
                ),
                caller,
            )
        except Exception:
            shutil.rmtree(final, ignore_errors=True)
            raise
        shutil.rmtree(upload_dir(rt, task_id), ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish_media(staging: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(final)
