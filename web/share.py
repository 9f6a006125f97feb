"""GET /api/server/share: the folders and files of the share, as CVAT lists them."""

from __future__ import annotations

from pathlib import Path

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.permissions import Action
from web.context import allowed, runtime
from web.errors import BadRequest
from web.responses import json_response
from workers.share import ShareError, list_share


def share_root(request: Request, field: str) -> Path:
    root = runtime(request).settings.share_dir
    if root is None:
        raise BadRequest({field: ["this server has no share (PALIMPSEST_SHARE_DIR is not set)"]})
    return root


async def share_list(request: Request) -> Response:
    allowed(request, Action.CREATE, "task")
    root = share_root(request, "directory")
    directory = request.query_params.get("directory") or "/"
    search = request.query_params.get("search") or ""
    try:
        entries = await run_in_threadpool(list_share, root, directory, search)
    except ShareError as error:
        raise BadRequest({"directory": [str(error)]}) from None
    return json_response(msgspec.to_builtins(entries))


ROUTES = [
    Route("/api/server/share", share_list, methods=["GET"]),
    Route("/api/server/share/", share_list, methods=["GET"]),
]
