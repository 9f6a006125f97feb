"""CVAT's /api/events: clients post their UI events (onto the log); the log exports as CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.client_events import ClientEventsBody, Poster, accepted_events, post_client_events
from core.permissions import Action
from projections.analytics import RECORD_COLUMNS
from web.context import allowed, execute, query_int
from web.errors import BadRequest
from web.reads import fetch_all
from web.responses import json_response, read_body

EXPORT_WINDOW = timedelta(days=30)  # CVAT's default when neither `from` nor `to` is given
FILTERS = ("org_id", "project_id", "task_id", "job_id", "user_id")


async def events_post(request: Request) -> Response:
    caller = allowed(request, Action.CREATE, "event")
    body = await read_body(request, ClientEventsBody)
    rows = await fetch_all(request, "SELECT email FROM catalog_users WHERE id = %s", (caller.id,))
    poster = Poster(caller.id, caller.username, rows[0][0] if rows else None)
    events = accepted_events(body, poster, datetime.now(UTC))
    if events:
        await execute(request, lambda unit: post_client_events(unit, events))
    return json_response({"events": events, "timestamp": body.timestamp.isoformat()}, status=201)


async def events_export(request: Request) -> Response:
    """CVAT's export handshake: no `query_id` → 202 with one; with it → 201 (ready);
    with `action=download` → the CSV. Admins read every event, others their own."""
    caller = allowed(request, Action.LIST, "event")
    action = request.query_params.get("action")
    if action not in (None, "download"):
        raise BadRequest({"action": ["Unexpected action specified for the request"]})
    filters = {name: query_int(request, name) for name in FILTERS}
    if not caller.is_superuser:
        if filters["user_id"] not in (None, caller.id):
            raise BadRequest({"user_id": ["you may export only your own events"]})
        filters["user_id"] = caller.id
    start, end = _time_range(request)
    query_id = request.query_params.get("query_id")
    if not query_id:
        return json_response({"query_id": str(uuid.uuid4())}, status=202)
    if action != "download":
        return Response(status_code=201)
    text = await _csv(request, filters, start, end)
    filename = request.query_params.get("filename") or datetime.now(UTC).strftime(
        "logs_%Y_%m_%d_%H_%M_%S.csv"
    )
    safe_name = "".join(ch for ch in filename if ch.isalnum() or ch in "._- ") or "logs.csv"
    return Response(
        text,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{safe_name}"'},
    )


def _time_range(request: Request) -> tuple[datetime | None, datetime | None]:
    bounds = {name: _query_time(request, name) for name in ("from", "to")}
    start, end = bounds["from"], bounds["to"]
    if start is not None and end is not None and start > end:
        raise BadRequest({"from": ["'from' must be before 'to'"]})
    if start is None and end is None:
        end = datetime.now(UTC)
        start = end - EXPORT_WINDOW
    return start, end


def _query_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest({name: [f"Cannot parse {name!r} datetime parameter: {raw!r}"]}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _csv(
    request: Request, filters: dict[str, int | None], start: datetime | None, end: datetime | None
) -> str:
    conditions = [sql.SQL("true")]
    params: list[Any] = []
    for name, value in filters.items():
        if value is not None:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
            params.append(value)
    if start is not None:
        conditions.append(sql.SQL("timestamp >= %s"))
        params.append(start)
    if end is not None:
        conditions.append(sql.SQL("timestamp <= %s"))
        params.append(end)
    query = sql.SQL(
        "SELECT {} FROM analytics_event_records WHERE {} ORDER BY timestamp, position, seq"
    ).format(
        sql.SQL(", ").join(sql.Identifier(column) for column in RECORD_COLUMNS),
        sql.SQL(" AND ").join(conditions),
    )
    rows = await fetch_all(request, query, tuple(params))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(RECORD_COLUMNS)
    for row in rows:
        writer.writerow(
            value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
            for value in row
        )
    return out.getvalue()


ROUTES = [
    Route("/api/events", events_post, methods=["POST"]),
    Route("/api/events", events_export, methods=["GET"]),
]
