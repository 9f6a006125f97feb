"""JSON responses encoded with msgspec, and decoding of request bodies into Structs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        _encoder.encode(content),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


async def read_body(request: Request, body_type: type[T]) -> T:
    """The request's JSON body as `body_type`; msgspec errors become 400s naming the field."""
    raw = await request.body()
    if not raw.strip():
        raw = b"{}"
    return msgspec.json.decode(raw, type=body_type)
