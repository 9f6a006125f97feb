"""Reading the analytics read model: figures of one job, task, project or user over dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql

from projections.analytics import IN_PROGRESS, SYSTEM_USER

Cursor = psycopg.Cursor[Any]
Target = Literal["job", "task", "project", "user"]
SCOPES: dict[str, sql.Composable] = {
    "job": sql.SQL("j.job_id = %(id)s"),
    "task": sql.SQL("j.task_id = %(id)s"),
    "project": sql.SQL("j.project_id = %(id)s"),
    "user": sql.SQL("d.user_id = %(id)s"),
}
IN_RANGE = sql.SQL(
    "(%(start)s::date IS NULL OR d.day >= %(start)s)"
    " AND (%(end)s::date IS NULL OR d.day <= %(end)s)"
)


def speed(objects: float, seconds: float) -> float:
    """Objects per hour of active time; 0 when there was none (as CVAT shows it)."""
    return objects * 3600.0 / seconds if seconds > 0 else 0.0


def figures(
    cur: Cursor,
    target: Target,
    ident: int,
    start: date | None = None,
    end: date | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Counts per UTC day and in total between `start` and `end` (inclusive, open if None),
    plus the totals CVAT does not filter by date: live object count (track frames counted),
    time in progress, and speed over all active time."""
    params = {"id": ident, "start": start, "end": end}
    scope = SCOPES[target]
    days = [
        {
            "date": day.isoformat(),
            "created": created,
            "updated": updated,
            "deleted": deleted,
            "active_seconds": active,
            "annotation_speed": speed(created, active),
        }
        for day, created, updated, deleted, active in _rows(
            cur,
            sql.SQL(
                "SELECT d.day, sum(d.created)::int, sum(d.updated)::int, sum(d.deleted)::int,"
                " sum(d.active_seconds)::float FROM analytics_daily d"
                " JOIN analytics_jobs j ON j.job_id = d.job_id WHERE {} AND {}"
                " GROUP BY d.day ORDER BY d.day"
            ).format(scope, IN_RANGE),
            params,
        )
    ]
    created = sum(day["created"] for day in days)
    active = sum(day["active_seconds"] for day in days)
    total_active = _scalar(
        cur,
        sql.SQL(
            "SELECT coalesce(sum(d.active_seconds), 0)::float FROM analytics_daily d"
            " JOIN analytics_jobs j ON j.job_id = d.job_id WHERE {}"
        ).format(scope),
        params,
    )
    total_objects = _total_objects(cur, target, params)
    result: dict[str, Any] = {
        "target": target,
        "id": ident,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "created": created,
        "updated": sum(day["updated"] for day in days),
        "deleted": sum(day["deleted"] for day in days),
        "active_seconds": active,
        "annotation_speed": speed(created, active),
        "days": days,
        "total_object_count": total_objects,
        "total_active_seconds": total_active,
        "total_annotation_speed": speed(total_objects, total_active),
        "annotation_seconds": None,
    }
    result["review"] = review_figures(cur, target, ident)
    if target != "user":
        result["annotation_seconds"] = _time_in_progress(cur, scope, params, now)
        result["users"] = _per_user(cur, scope, params)
    return result


REVIEW_SCOPES: dict[str, sql.Composable] = {
    **SCOPES,
    "user": sql.SQL(
        "j.job_id IN (SELECT job_id FROM analytics_review_verdicts WHERE annotator_id = %(id)s)"
    ),
}


def review_figures(cur: Cursor, target: Target, ident: int) -> dict[str, Any]:
    """Review rounds over the whole history: how many jobs were judged, how many were
    accepted at their first verdict, the rejections per judged job, and how long completed
    jobs waited for a verdict; for a user, as the annotator; otherwise also per annotator."""
    rows = _rows(
        cur,
        sql.SQL(
            "WITH v AS (SELECT v.*, row_number() OVER (PARTITION BY v.job_id"
            " ORDER BY v.position) AS round FROM analytics_review_verdicts v"
            " JOIN analytics_jobs j ON j.job_id = v.job_id WHERE {} AND NOT j.deleted)"
            " SELECT grouping(v.annotator_id) = 1, v.annotator_id, u.username,"
            " count(DISTINCT v.job_id)::int,"
            " (count(*) FILTER (WHERE v.round = 1 AND v.accepted))::int,"
            " (count(*) FILTER (WHERE NOT v.accepted))::int, avg(v.waited_seconds)::float"
            " FROM v LEFT JOIN analytics_users u ON u.user_id = v.annotator_id"
            " GROUP BY GROUPING SETS ((v.annotator_id, u.username), ())"
            " ORDER BY 1, v.annotator_id"
        ).format(REVIEW_SCOPES[target]),
        {"id": ident},
    )
    people = [row[1:] for row in rows if not row[0]]
    if target == "user":
        chosen = next((row for row in people if row[0] == ident), None)
    else:
        chosen = next((row[1:] for row in rows if row[0]), None)
    figures = _review_entry(*(chosen or (None, None, 0, 0, 0, None)))
    del figures["user_id"], figures["username"]
    if target != "user":
        figures["annotators"] = [_review_entry(*row) for row in people]
    return figures


def _review_entry(
    user_id: int | None,
    username: str | None,
    jobs: int,
    first_pass: int,
    rejections: int,
    mean_wait: float | None,
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "username": username,
        "reviewed_jobs": jobs,
        "first_pass_accepted": first_pass,
        "first_pass_acceptance_rate": first_pass / jobs if jobs else None,
        "rejections": rejections,
        "rejection_rounds_per_job": rejections / jobs if jobs else None,
        "completion_to_review_seconds": mean_wait,
    }


def _total_objects(cur: Cursor, target: Target, params: dict[str, Any]) -> int:
    if target == "user":
        query: sql.Composable = sql.SQL(
            "SELECT coalesce(sum(frames), 0)::int FROM analytics_objects WHERE creator = %(id)s"
        )
    else:
        query = sql.SQL(
            "SELECT coalesce(sum(o.frames), 0)::int FROM analytics_objects o"
            " JOIN analytics_jobs j ON j.job_id = o.job_id WHERE {}"
        ).format(SCOPES[target])
    return int(_scalar(cur, query, params))


def _time_in_progress(
    cur: Cursor, scope: sql.Composable, params: dict[str, Any], now: datetime | None
) -> float:
    """Seconds the jobs spent in state "in progress", counting a job in it until `now`."""
    return _scalar(
        cur,
        sql.SQL(
            "SELECT coalesce(sum(j.in_progress_seconds + CASE WHEN j.state = %(in_progress)s"
            " THEN greatest(0, extract(epoch FROM %(now)s - j.state_since)) ELSE 0 END), 0)::float"
            " FROM analytics_jobs j WHERE {} AND NOT j.deleted"
        ).format(scope),
        {**params, "in_progress": IN_PROGRESS, "now": now or datetime.now(UTC)},
    )


def _per_user(cur: Cursor, scope: sql.Composable, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = _rows(
        cur,
        sql.SQL(
            "SELECT d.user_id, u.username, sum(d.created)::int, sum(d.updated)::int,"
            " sum(d.deleted)::int, sum(d.active_seconds)::float FROM analytics_daily d"
            " JOIN analytics_jobs j ON j.job_id = d.job_id"
            " LEFT JOIN analytics_users u ON u.user_id = d.user_id"
            " WHERE {} AND {} AND d.user_id <> %(system)s GROUP BY d.user_id, u.username"
            " ORDER BY d.user_id"
        ).format(scope, IN_RANGE),
        {**params, "system": SYSTEM_USER},
    )
    return [
        {
            "user_id": user_id,
            "username": username,
            "created": created,
            "updated": updated,
            "deleted": deleted,
            "active_seconds": active,
            "annotation_speed": speed(created, active),
        }
        for user_id, username, created, updated, deleted, active in rows
    ]


def _rows(cur: Cursor, query: sql.Composable, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    cur.execute(query, params)
    return cur.fetchall()


def _scalar(cur: Cursor, query: sql.Composable, params: dict[str, Any]) -> float:
    cur.execute(query, params)
    row = cur.fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0
