"""CVAT's data upload protocol on /api/tasks/{id}/data/: Upload-Start, -Multiple, -Finish."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import msgspec
import structlog
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from core.cloud_storages import is_safe_key
from core.errors import ValidationFailed
from core.permissions import Action, Principal
from core.task_data import DataRequest, check_data_request
from infra.background import Operation
from infra.buckets import Bucket, BucketError
from infra.ingest_jobs import IngestJob, run_ingest, upload_dir
from web import background_work, tus
from web.cloud_storages import usable_bucket
from web.context import path_id, permitted, runtime
from web.errors import BadRequest
from web.reads import fetch_doc
from web.responses import json_response
from web.share import share_root
from workers.images import MediaError
from workers.ingest import record_upload, record_uploads, upload_order
from workers.share import ShareError, share_files

log = structlog.get_logger(__name__)

MAX_FILES_PER_REQUEST = 10_000
MAX_FIELD_SIZE = 1024 * 1024


async def task_data_upload(request: Request) -> Response:
    caller = await permitted(request, Action.CHANGE, "task", path_id(request))
    task_id = path_id(request)
    task = await _check_can_attach(request, caller, task_id)
    headers = request.headers
    if "tus-resumable" in headers:
        upload_dir(runtime(request), task_id).mkdir(parents=True, exist_ok=True)
        return await tus.create(request, caller.id, echo_name=True)
    starting = "upload-start" in headers
    finishing = "upload-finish" in headers
    if "upload-multiple" in headers:
        await _receive_files(request, task_id)
        return json_response({}, status=200)
    if starting and not finishing:
        await run_in_threadpool(_reset_upload_dir, upload_dir(runtime(request), task_id))
        return json_response({}, status=202)
    if not finishing:  # a one-shot request carries its files and parameters together
        await run_in_threadpool(_reset_upload_dir, upload_dir(runtime(request), task_id))
    data_request = await _data_request(request, task_id, receive_files=not finishing)
    _check_validation_for_task(task, data_request)
    bucket = None
    if data_request.cloud_storage_id is not None:
        _, bucket = await usable_bucket(request, data_request.cloud_storage_id)
    rq_id = await _start_ingest(request, caller, task_id, data_request, bucket)
    return json_response({"rq_id": rq_id}, status=202)


async def _check_can_attach(request: Request, caller: Principal, task_id: int) -> dict[str, Any]:
    task = await fetch_doc(request, "catalog_tasks", task_id, "task")
    if task.get("data") is not None:
        raise ValidationFailed.one("data", "Adding more data is not supported")
    return task


def _check_validation_for_task(task: dict[str, Any], data_request: DataRequest) -> None:
    params = data_request.validation_params
    if params is not None and params.mode == "gt_pool" and task.get("overlap"):
        raise ValidationFailed.one(
            "validation_params.mode", 'validation mode "gt_pool" cannot be used with "overlap"'
        )


def _reset_upload_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


async def _receive_files(request: Request, task_id: int) -> FormData:
    target = upload_dir(runtime(request), task_id)
    form = await request.form(max_files=MAX_FILES_PER_REQUEST, max_part_size=MAX_FIELD_SIZE)
    files = [(key, value) for key, value in form.multi_items() if isinstance(value, UploadFile)]
    await run_in_threadpool(_store_files, target, files)
    return form


def _store_files(target: Path, files: list[tuple[str, UploadFile]]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    existing = set(upload_order(target))
    stored: list[str] = []
    try:
        for key, upload in files:
            if not key.startswith("client_files"):
                continue
            name = safe_file_name(upload.filename or "", key)
            if name in existing:
                raise BadRequest({key: [f"a file named {name} was uploaded already"]})
            with (target / name).open("wb") as out:
                upload.file.seek(0)
                shutil.copyfileobj(upload.file, out, 1024 * 1024)
            stored.append(name)
            existing.add(name)
    finally:
        record_uploads(target, stored)


def take_tus_file(request: Request, upload: tus.TusFile) -> None:
    """A finished resumable upload joins the task's uploaded files, in arrival order."""
    target = upload_dir(runtime(request), int(request.path_params["id"]))
    target.mkdir(parents=True, exist_ok=True)
    name = safe_file_name(upload.filename, "filename")
    if name in set(upload_order(target)):
        tus.remove(upload)
        raise BadRequest({"filename": [f"a file named {name} was uploaded already"]})
    os.replace(upload.path, target / name)
    upload.path.with_suffix(".json").unlink(missing_ok=True)
    record_upload(target, name)


def safe_file_name(client_name: str, field: str) -> str:
    """The base name of a client path (POSIX or Windows), refusing anything that escapes."""
    name = PureWindowsPath(PurePosixPath(client_name).name).name
    if name in ("", ".", "..") or "\x00" in name or name.startswith("."):
        raise BadRequest({field: [f"{client_name!r} is not a usable file name"]})
    return name


async def _data_request(request: Request, task_id: int, *, receive_files: bool) -> DataRequest:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await (
            _receive_files(request, task_id)
            if receive_files
            else request.form(max_files=0, max_part_size=MAX_FIELD_SIZE)
        )
        fields: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                _add_form_field(fields, key, value)
        data_request = msgspec.convert(fields, DataRequest, strict=False)
    else:
        raw = await request.body()
        data_request = msgspec.json.decode(raw or b"{}", type=DataRequest)
    check_data_request(data_request)
    return data_request


def _add_form_field(fields: dict[str, Any], key: str, value: str) -> None:
    base = key.split("[", 1)[0]
    if base in ("upload_file_order", "server_files", "remote_files", "server_files_exclude"):
        fields.setdefault(base, []).append(value)
    elif base in ("use_zip_chunks", "use_cache", "copy_data"):
        fields[base] = value.lower() in ("true", "1")
    elif base == "validation_params":
        fields[base] = _json_field(base, value)
    else:
        fields[base] = value


def _json_field(name: str, value: str) -> object:
    try:
        return msgspec.json.decode(value)
    except msgspec.DecodeError:
        raise BadRequest({name: ["must be a JSON object"]}) from None


def job_message(job: IngestJob) -> bytes:
    return msgspec.json.encode(job)


async def _start_ingest(
    request: Request,
    caller: Principal,
    task_id: int,
    data_request: DataRequest,
    bucket: Bucket | None = None,
) -> str:
    rt = runtime(request)
    operation = Operation(type="create:task", target="task", task_id=task_id)
    shared = await _share_files(request, task_id, data_request) if bucket is None else {}

    def job(rq_id: str) -> IngestJob:
        files = {name: str(path) for name, path in shared.items()}
        return IngestJob(rq_id, task_id, caller, data_request, files)

    async def ingest(rq_id: str, progress: background_work.Progress) -> background_work.Outcome:
        if bucket is not None:
            message = f"Downloading {len(data_request.server_files)} files"
            await run_in_threadpool(progress, 0.0, message)
            await take_bucket_files(bucket, data_request.server_files, upload_dir(rt, task_id))
        await run_ingest(rt, job(rq_id), progress)
        return background_work.Outcome(result_id=task_id)

    # A bucket's files are fetched by this process, so that work is not queued for a worker.
    queued = None if bucket is not None else ("ingest", lambda rq_id: job_message(job(rq_id)))
    return await background_work.start(request, caller, operation, ingest, queued=queued)


async def _share_files(
    request: Request, task_id: int, data_request: DataRequest
) -> dict[str, Path]:
    """The share files a request names, checked before anything starts (none: {})."""
    if not data_request.server_files:
        return {}
    root = share_root(request, "server_files")
    if await run_in_threadpool(upload_order, upload_dir(runtime(request), task_id)):
        raise BadRequest({"server_files": ["give either uploaded files or server_files"]})
    try:
        return await run_in_threadpool(
            share_files, root, data_request.server_files, data_request.server_files_exclude
        )
    except ShareError as error:
        raise BadRequest({"server_files": [str(error)]}) from None


async def take_bucket_files(bucket: Bucket, keys: list[str], target: Path) -> None:
    """Downloads the named objects into the task's upload folder, in the given order, as if
    they had been uploaded (a manifest among them included)."""
    await run_in_threadpool(_reset_upload_dir, target)
    try:
        keys = await _expand_folders(bucket, keys)
        await bucket.download(keys, target)
    except BucketError as error:
        raise MediaError(str(error)) from None
    await run_in_threadpool(record_uploads, target, keys)


async def _expand_folders(bucket: Bucket, keys: list[str]) -> list[str]:
    """A key ending in / stands for every object under it, as in CVAT's file browser."""
    expanded: list[str] = []
    for key in keys:
        if key.endswith("/"):
            expanded += await bucket.keys_under(key, MAX_FILES_PER_REQUEST)
        else:
            expanded.append(key)
    unique = list(dict.fromkeys(expanded))
    if len(unique) > MAX_FILES_PER_REQUEST:
        raise MediaError(f"more than {MAX_FILES_PER_REQUEST} files were named")
    for key in unique:
        if not is_safe_key(key):
            raise MediaError(f"the bucket holds {key!r}, which is not a usable file name")
    return unique
