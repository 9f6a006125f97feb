"""Turns domain and input errors into CVAT-style JSON answers; a 5xx is a bug, and logged."""

from __future__ import annotations

import re

import msgspec
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from core.errors import Conflict, NotAuthenticated, NotFound, PermissionDenied, ValidationFailed
from web.responses import json_response

log = structlog.get_logger(__name__)

_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<field>[^`]+)`")


class BadRequest(Exception):
    """A request the web layer itself refuses (bad query parameter, missing upload)."""

    def __init__(self, errors: dict[str, list[str]] | str) -> None:
        super().__init__(str(errors))
        self.errors = errors


def msgspec_errors(error: msgspec.ValidationError | msgspec.DecodeError) -> dict[str, list[str]]:
    """`Expected int, got str - at $.labels[0].id` → {"labels[0].id": ["Expected int, got str"]}."""
    text = str(error)
    match = _MSGSPEC_PATH.match(text)
    message = match.group("message") if match else text
    path = (match.group("path") or "") if match else ""
    missing = _MISSING_FIELD.match(message)
    if missing:
        path = f"{path}.{missing.group('field')}"
        message = "This field is required."
    path = path.lstrip(".") or "non_field_errors"
    return {path: [message]}


async def validation_failed(request: Request, error: Exception) -> Response:
    assert isinstance(error, ValidationFailed)
    return json_response(error.errors, status=400)


async def bad_request(request: Request, error: Exception) -> Response:
    assert isinstance(error, BadRequest)
    errors = error.errors
    return json_response(errors if isinstance(errors, dict) else {"detail": errors}, status=400)


async def bad_body(request: Request, error: Exception) -> Response:
    assert isinstance(error, msgspec.ValidationError | msgspec.DecodeError)
    return json_response(msgspec_errors(error), status=400)


async def not_found(request: Request, error: Exception) -> Response:
    return json_response({"detail": f"Not found: {error}"}, status=404)


async def permission_denied(request: Request, error: Exception) -> Response:
    return json_response({"detail": str(error) or "Permission denied."}, status=403)


async def conflict(request: Request, error: Exception) -> Response:
    return json_response({"detail": str(error)}, status=409)


async def unauthorized(request: Request, error: Exception) -> Response:
    assert isinstance(error, NotAuthenticated)
    return json_response({"detail": error.detail}, status=401)


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return json_response({"detail": error.detail}, status=error.status_code, headers=error.headers)


async def server_error(request: Request, error: Exception) -> Response:
    log.exception("unhandled error", path=request.url.path, method=request.method)
    return json_response({"detail": "Internal server error; it has been logged."}, status=500)


EXCEPTION_HANDLERS = {
    ValidationFailed: validation_failed,
    BadRequest: bad_request,
    msgspec.ValidationError: bad_body,
    msgspec.DecodeError: bad_body,
    NotFound: not_found,
    PermissionDenied: permission_denied,
    Conflict: conflict,
    NotAuthenticated: unauthorized,
    HTTPException: http_error,
    Exception: server_error,
}
