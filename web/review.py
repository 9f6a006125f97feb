"""/api/issues and /api/comments: a reviewer's issues on a job's frames, and their comments."""

from __future__ import annotations

from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound
from core.issues import (
    CommentInput,
    CommentPatch,
    IssueInput,
    IssuePatch,
    add_comment,
    change_issue,
    edit_comment,
    open_issue,
    remove_comment,
    remove_issue,
)
from core.permissions import Action
from projections.list_query import Field, ListSpec
from web.context import allowed, base_url, execute, path_id
from web.pagination import Listing, list_response
from web.reads import fetch_all, fetch_doc
from web.representations import comment_json, issue_json
from web.responses import json_response, read_body

ISSUES = Listing(
    table="catalog_issues",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "job_id": Field(sql.Identifier("job_id"), "int", cast=False),
            "task_id": Field(sql.Identifier("task_id"), "int", cast=False),
            "frame_id": Field(sql.SQL("doc->>'frame'"), "int"),
            "resolved": Field(sql.SQL("doc->>'resolved'"), "bool"),
            "owner": Field(sql.SQL("doc->'owner'->>'username'"), "text"),
            "assignee": Field(sql.SQL("doc->'assignee'->>'username'"), "text"),
            "updated_date": Field(sql.SQL("doc->>'updated_date'"), "datetime"),
        },
        search_fields=("owner", "assignee"),
        simple_filters=("job_id", "task_id", "frame_id", "resolved", "owner", "assignee"),
        ordering_fields=("id", "job_id", "frame_id", "owner", "assignee", "updated_date"),
        default_order="id",
    ),
    render=issue_json,
)

COMMENTS = Listing(
    table="catalog_comments",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "issue_id": Field(sql.Identifier("issue_id"), "int", cast=False),
            "job_id": Field(sql.Identifier("job_id"), "int", cast=False),
            "owner": Field(sql.SQL("doc->'owner'->>'username'"), "text"),
        },
        search_fields=("owner",),
        simple_filters=("issue_id", "job_id", "owner"),
        ordering_fields=("id", "owner"),
        default_order="id",
    ),
    render=comment_json,
)


async def issues_list(request: Request) -> Response:
    allowed(request, Action.LIST, "issue")
    return await list_response(request, ISSUES)


async def issue_create(request: Request) -> Response:
    caller = allowed(request, Action.CREATE, "issue")
    body = await read_body(request, IssueInput)
    written = await execute(request, lambda unit: open_issue(unit, caller, body))
    issue, _ = written.value
    return await _issue_response(request, issue.id, status_code=201)


async def issue_detail(request: Request) -> Response:
    allowed(request, Action.VIEW, "issue")
    return await _issue_response(request, path_id(request))


async def issue_update(request: Request) -> Response:
    caller = allowed(request, Action.CHANGE, "issue")
    issue_id = path_id(request)
    body = await read_body(request, IssuePatch)
    job_id = await _job_of(request, "catalog_issues", issue_id, "issue")
    await execute(request, lambda unit: change_issue(unit, caller, job_id, issue_id, body))
    return await _issue_response(request, issue_id)


async def issue_delete(request: Request) -> Response:
    caller = allowed(request, Action.DELETE, "issue")
    issue_id = path_id(request)
    job_id = await _job_of(request, "catalog_issues", issue_id, "issue")
    await execute(request, lambda unit: remove_issue(unit, caller, job_id, issue_id))
    return Response(status_code=204)


async def comments_list(request: Request) -> Response:
    allowed(request, Action.LIST, "comment")
    return await list_response(request, COMMENTS)


async def comment_create(request: Request) -> Response:
    caller = allowed(request, Action.CREATE, "comment")
    body = await read_body(request, CommentInput)
    job_id = await _job_of(request, "catalog_issues", body.issue, "issue")
    written = await execute(request, lambda unit: add_comment(unit, caller, job_id, body))
    return await _comment_response(request, written.value, status_code=201)


async def comment_detail(request: Request) -> Response:
    allowed(request, Action.VIEW, "comment")
    return await _comment_response(request, path_id(request))


async def comment_update(request: Request) -> Response:
    caller = allowed(request, Action.CHANGE, "comment")
    comment_id = path_id(request)
    body = await read_body(request, CommentPatch)
    job_id = await _job_of(request, "catalog_comments", comment_id, "comment")
    await execute(request, lambda unit: edit_comment(unit, caller, job_id, comment_id, body))
    return await _comment_response(request, comment_id)


async def comment_delete(request: Request) -> Response:
    caller = allowed(request, Action.DELETE, "comment")
    comment_id = path_id(request)
    job_id = await _job_of(request, "catalog_comments", comment_id, "comment")
    await execute(request, lambda unit: remove_comment(unit, caller, job_id, comment_id))
    return Response(status_code=204)


async def _job_of(request: Request, table: str, ident: int, kind: str) -> int:
    query = sql.SQL("SELECT job_id FROM {} WHERE id = %s").format(sql.Identifier(table))
    rows = await fetch_all(request, query, (ident,))
    if not rows:
        raise NotFound(kind, ident)
    return int(rows[0][0])


async def _issue_response(request: Request, issue_id: int, status_code: int = 200) -> Response:
    doc = await fetch_doc(request, "catalog_issues", issue_id, "issue")
    return json_response(issue_json(doc, base_url(request)), status=status_code)


async def _comment_response(request: Request, comment_id: int, status_code: int = 200) -> Response:
    doc = await fetch_doc(request, "catalog_comments", comment_id, "comment")
    return json_response(comment_json(doc, base_url(request)), status=status_code)


ROUTES = [
    Route("/api/issues", issues_list, methods=["GET"]),
    Route("/api/issues", issue_create, methods=["POST"]),
    Route("/api/issues/{id:int}", issue_detail, methods=["GET"]),
    Route("/api/issues/{id:int}", issue_update, methods=["PATCH"]),
    Route("/api/issues/{id:int}", issue_delete, methods=["DELETE"]),
    Route("/api/comments", comments_list, methods=["GET"]),
    Route("/api/comments", comment_create, methods=["POST"]),
    Route("/api/comments/{id:int}", comment_detail, methods=["GET"]),
    Route("/api/comments/{id:int}", comment_update, methods=["PATCH"]),
    Route("/api/comments/{id:int}", comment_delete, methods=["DELETE"]),
]
