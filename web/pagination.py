"""CVAT's paginated lists over a catalog table: filter, search, sort, then one page."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response

from projections.list_query import ListQueryError, ListSpec, build_order, build_where
from projections.visibility import visible_where
from web.context import base_url, principal, runtime
from web.errors import BadRequest
from web.responses import json_response

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
Render = Callable[[dict[str, Any], str], dict[str, Any]]
# Parameters the clients send that are not filters on these lists.
IGNORED_PARAMS = frozenset({"page", "page_size", "org", "org_id"})


@dataclass(frozen=True)
class Listing:
    table: str
    spec: ListSpec
    render: Render
    # The kind (project, task, job) whose view rule filters the rows; with an organization
    # chosen, only its rows are listed.
    kind: str | None = None


async def list_response(
    request: Request,
    listing: Listing,
    *,
    extra_where: sql.Composable | None = None,
    extra_params: tuple[Any, ...] = (),
) -> Response:
    page, page_size = page_params(request)
    params = {k: v for k, v in request.query_params.items() if k not in IGNORED_PARAMS}
    try:
        where, values = build_where(listing.spec, params)
        order = build_order(listing.spec, params)
    except ListQueryError as error:
        raise BadRequest({error.field: [str(error)]}) from None
    caller = principal(request)
    if listing.kind is not None and caller is not None:
        scope = visible_where(listing.kind, caller)
        if caller.org_id is not None:
            scope = sql.SQL("{} AND organization_id = {}").format(scope, sql.Literal(caller.org_id))
        if extra_where is not None:
            scope = sql.SQL("({}) AND {}").format(extra_where, scope)
        extra_where = scope
    if extra_where is not None:
        where = sql.SQL("({}) AND ({})").format(where, extra_where)
        values = [*values, *extra_params]
    table = sql.Identifier(listing.table)
    count_query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table, where)
    page_query = sql.SQL("SELECT doc FROM {} WHERE {} ORDER BY {} LIMIT %s OFFSET %s").format(
        table, where, order
    )
    with runtime(request).pool.connection() as conn:
        count = conn.execute(count_query, values).fetchone()[0]  # type: ignore[index]
        limit = page_size if page_size is not None else max(count, 1)
        rows = conn.execute(page_query, [*values, limit, (page - 1) * limit]).fetchall()
    base = base_url(request)
    results = [listing.render(row[0], base) for row in rows]
    return json_response(page_links(request, results, count, page, limit, page_size is None))


def page_params(request: Request) -> tuple[int, int | None]:
    """(page, page_size) from the query; page_size None means `all`."""
    raw_page = request.query_params.get("page") or "1"
    raw_size = request.query_params.get("page_size") or str(DEFAULT_PAGE_SIZE)
    if not raw_page.isdigit() or int(raw_page) < 1:
        raise BadRequest({"page": ["Invalid page."]})
    if raw_size == "all":
        return int(raw_page), None
    if not raw_size.isdigit() or int(raw_size) < 1:
        raise BadRequest({"page_size": ["must be a positive number or 'all'"]})
    return int(raw_page), min(int(raw_size), MAX_PAGE_SIZE)


def page_links(
    request: Request, results: list[Any], count: int, page: int, limit: int, everything: bool
) -> Mapping[str, Any]:
    def link(number: int) -> str:
        query = dict(request.query_params)
        query["page"] = str(number)
        return f"{base_url(request)}{request.url.path}?{urlencode(query)}"

    last_page = 1 if everything else max(1, -(-count // limit))
    return {
        "count": count,
        "next": link(page + 1) if page < last_page else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": results,
    }


def unpaged(results: list[Any]) -> dict[str, Any]:
    """A whole list in CVAT's page shape, for lists that are always short."""
    return {"count": len(results), "next": None, "previous": None, "results": results}
