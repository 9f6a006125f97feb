"""Resumable uploads (TUS 1.0.0 creation + core), as cvat-sdk sends big files and annotations.

A client creates an upload with POST (Tus-Resumable, Upload-Length, Upload-Metadata), gets
its Location, sends the bytes in PATCHes at Upload-Offset, and can ask HEAD where it stands
after a dropped connection. Files live under DATA_DIR/uploads/tus until the request that
names them (Upload-Finish) takes them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound
from core.permissions import Action
from web.context import allowed, base_url, runtime
from web.errors import BadRequest

TUS_VERSION = "1.0.0"
MAX_SIZE = 20 * 1024**3
MAX_CHUNK = 100 * 1024 * 1024
FILE_ID = re.compile(r"^\d+_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TUS_HEADERS = {
    "Tus-Resumable": TUS_VERSION,
    "Tus-Version": TUS_VERSION,
    "Tus-Max-Size": str(MAX_SIZE),
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class TusFile:
    file_id: str
    filename: str
    length: int
    user_id: int
    path: Path

    @property
    def offset(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    @property
    def complete(self) -> bool:
        return self.offset == self.length


def tus_root(request: Request) -> Path:
    return runtime(request).settings.data_dir / "uploads" / "tus"


def load(request: Request, file_id: str) -> TusFile:
    if not FILE_ID.match(file_id):
        raise NotFound("upload", file_id)
    meta = tus_root(request) / f"{file_id}.json"
    if not meta.exists():
        raise NotFound("upload", file_id)
    data = json.loads(meta.read_text())
    return TusFile(
        file_id, data["filename"], data["length"], data["user_id"], meta.with_suffix(".part")
    )


def filename_from_metadata(header: str) -> str | None:
    for item in header.split(","):
        key, _, value = item.strip().partition(" ")
        if key == "filename":
            try:
                return base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise BadRequest("Upload-Metadata: the filename is not base64") from None
    return None


async def create(request: Request, user_id: int, *, echo_name: bool) -> Response:
    """POST with Tus-Resumable: a new upload. `echo_name`: Upload-Filename is the file name
    (data uploads) rather than the file id (annotations, backups)."""
    try:
        length = int(request.headers.get("upload-length", ""))
    except ValueError:
        raise BadRequest("Upload-Length must be a whole number") from None
    if length < 0:
        raise BadRequest("Upload-Length must not be negative")
    if length > MAX_SIZE:
        return Response("File too large", status_code=413, headers=TUS_HEADERS)
    filename = filename_from_metadata(request.headers.get("upload-metadata", ""))
    if not filename:
        raise BadRequest("Upload-Metadata must carry a filename")
    file_id = f"{user_id}_{uuid.uuid4()}"
    root = tus_root(request)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"filename": filename, "length": length, "user_id": user_id}
    (root / f"{file_id}.json").write_text(json.dumps(meta))
    (root / f"{file_id}.part").touch()
    location = f"{base_url(request)}{request.url.path.rstrip('/')}/{file_id}"
    headers = {
        **TUS_HEADERS,
        "Location": location,
        "Upload-Filename": filename if echo_name else file_id,
    }
    return Response(status_code=201, headers=headers)


OnComplete = Callable[[Request, TusFile], None]


async def head(request: Request) -> Response:
    allowed(request, Action.VIEW, "upload")
    upload = load(request, request.path_params["file_id"])
    headers = {
        **TUS_HEADERS,
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
    }
    return Response(status_code=200, headers=headers)


async def patch(request: Request, on_complete: OnComplete | None = None) -> Response:
    caller = allowed(request, Action.CHANGE, "upload")
    upload = load(request, request.path_params["file_id"])
    if upload.user_id != caller.id:
        raise NotFound("upload", upload.file_id)
    if request.headers.get("content-type") != "application/offset+octet-stream":
        return Response(
            "Content-Type must be application/offset+octet-stream",
            status_code=415,
            headers=TUS_HEADERS,
        )
    try:
        offset = int(request.headers.get("upload-offset", ""))
    except ValueError:
        raise BadRequest("Upload-Offset must be a whole number") from None
    if offset != upload.offset:
        headers = {**TUS_HEADERS, "Upload-Offset": str(upload.offset)}
        return Response("Offset mismatch", status_code=409, headers=headers)
    chunk = await request.body()
    if len(chunk) > MAX_CHUNK or offset + len(chunk) > upload.length:
        raise BadRequest("the chunk runs past Upload-Length")
    await run_in_threadpool(_append, upload.path, chunk)
    finished = load(request, upload.file_id)
    if finished.complete and on_complete is not None:
        await run_in_threadpool(on_complete, request, finished)
    return Response(status_code=204, headers={**TUS_HEADERS, "Upload-Offset": str(finished.offset)})


def _append(path: Path, chunk: bytes) -> None:
    with path.open("ab") as out:
        out.write(chunk)


def remove(upload: TusFile) -> None:
    upload.path.unlink(missing_ok=True)
    upload.path.with_suffix(".json").unlink(missing_ok=True)


def file_routes(prefix: str, on_complete: OnComplete | None = None) -> list[Route]:
    """HEAD and PATCH on `{prefix}/{file_id}`; `on_complete` takes a finished file."""

    async def tagged_patch(request: Request) -> Response:
        return await patch(request, on_complete)

    path = f"{prefix}/{{file_id}}"
    return [
        Route(path, head, methods=["HEAD"]),
        Route(path, tagged_patch, methods=["PATCH"]),
    ]
