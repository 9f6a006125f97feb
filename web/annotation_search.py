"""GET /api/annotations/search: current objects across jobs, from the annotation index.

Filters (all optional, combined with AND): project_id, task_id, job_id, label_id, label (a
label name, matched in the project's or task's labels), kind (tag, shape, track), type (a
shape type; a track's is that of its shapes), frame (objects on it: a track from its first
to its last key frame); `page` and `page_size` as in CVAT's lists. Each result is the
object's CVAT JSON with its job, task, project, kind, revision (the job version that last
wrote it), updated_by and updated_date. The index follows the log in the background: it
may be a moment behind the latest edits.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from psycopg import sql
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.annotations import ShapeType
from core.permissions import Action
from projections.visibility import visible_where
from web.context import allowed, runtime
from web.errors import BadRequest, msgspec_errors
from web.pagination import page_links, page_params
from web.responses import json_response

EQUALS = ("project_id", "task_id", "job_id", "label_id", "kind", "type")


class SearchQuery(msgspec.Struct, forbid_unknown_fields=True):
    project_id: int | None = None
    task_id: int | None = None
    job_id: int | None = None
    label_id: int | None = None
    label: str | None = None
    kind: Literal["tag", "shape", "track"] | None = None
    type: ShapeType | None = None
    frame: int | None = None
    page: str | None = None
    page_size: str | None = None
    org: str | None = None
    org_id: str | None = None


async def search(request: Request) -> Response:
    caller = allowed(request, Action.LIST, "job")
    page, page_size = page_params(request)
    try:
        query = msgspec.convert(dict(request.query_params), SearchQuery, strict=False)
    except msgspec.ValidationError as error:
        raise BadRequest(msgspec_errors(error)) from None
    where, values = _conditions(query)
    # only objects of jobs the caller may see, by the same rule as /api/jobs
    visible = sql.SQL("a.job_id IN (SELECT catalog_jobs.id FROM catalog_jobs WHERE {})").format(
        visible_where("job", caller)
    )
    where = sql.SQL("{} AND {}").format(where, visible)
    count_sql = sql.SQL("SELECT count(*) FROM annotation_index a WHERE {}").format(where)
    page_sql = sql.SQL(
        "SELECT a.job_id, a.task_id, a.project_id, a.kind, a.revision, a.updated_by,"
        " a.updated_at, a.data FROM annotation_index a WHERE {}"
        " ORDER BY a.job_id, a.object_id LIMIT %s OFFSET %s"
    ).format(where)
    pool = runtime(request).pool

    def run() -> tuple[int, list[Any]]:
        with pool.connection() as conn:
            count = conn.execute(count_sql, values).fetchone()[0]  # type: ignore[index]
            limit = page_size if page_size is not None else max(count, 1)
            rows = conn.execute(page_sql, [*values, limit, (page - 1) * limit]).fetchall()
        return count, rows

    count, rows = await run_in_threadpool(run)
    limit = page_size if page_size is not None else max(count, 1)
    results = [_result(row) for row in rows]
    return json_response(page_links(request, results, count, page, limit, page_size is None))


def _conditions(query: SearchQuery) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = [sql.SQL("true")]
    values: list[Any] = []
    for name in EQUALS:
        value = getattr(query, name)
        if value is not None:
            parts.append(sql.SQL("a.{} = %s").format(sql.Identifier(name)))
            values.append(value)
    if query.frame is not None:
        parts.append(sql.SQL("a.frame <= %s AND a.last_frame >= %s"))
        values += [query.frame, query.frame]
    if query.label is not None:
        parts.append(
            sql.SQL(
                "a.label_id IN (SELECT l.id FROM catalog_labels l WHERE l.doc->>'name' = %s"
                " AND (l.project_id = a.project_id OR l.task_id = a.task_id))"
            )
        )
        values.append(query.label)
    return sql.SQL(" AND ").join(parts), values


def _result(row: tuple[Any, ...]) -> dict[str, Any]:
    job_id, task_id, project_id, kind, revision, updated_by, updated_at, data = row
    return {
        **data,
        "job_id": job_id,
        "task_id": task_id,
        "project_id": project_id,
        "kind": kind,
        "revision": revision,
        "updated_by": updated_by,
        "updated_date": updated_at.isoformat().replace("+00:00", "Z"),
    }


ROUTES = [Route("/api/annotations/search", search, methods=["GET"])]
