"""CVAT's /api/tasks/{id}/validation_layout and /api/jobs/{id}/validation_layout: a task's
validation frames and honeypots, read and changed by the task's staff (never by a job's
annotator, who must not learn which frames are honeypots)."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.honeypots import JobLayoutPatch, TaskLayoutPatch, change_job_layout, change_task_layout
from core.permissions import Action, Principal
from web.context import execute, path_id, permitted
from web.reads import fetch_all, fetch_doc
from web.responses import json_response, read_body


async def _validation(request: Request, task_id: int) -> dict[str, Any] | None:
    rows = await fetch_all(request, "SELECT data FROM catalog_tasks WHERE id = %s", (task_id,))
    data = rows[0][0] if rows else None
    return data.get("validation") if data else None


def task_layout_json(layout: dict[str, Any] | None) -> dict[str, Any]:
    if layout is None:
        return {"mode": None, "frames_per_job_count": None}
    answer = {
        "mode": layout["mode"],
        "frames_per_job_count": layout.get("frames_per_job_count"),
        "validation_frames": layout["frames"],
        "disabled_frames": layout["disabled_frames"],
    }
    if layout["mode"] == "gt_pool":
        answer |= {
            "honeypot_count": len(layout["honeypot_frames"]),
            "honeypot_frames": layout["honeypot_frames"],
            "honeypot_real_frames": layout["honeypot_real_frames"],
        }
    return answer


def job_layout_json(layout: dict[str, Any] | None, job: dict[str, Any]) -> dict[str, Any]:
    if layout is None or layout["mode"] != "gt_pool":
        return {}
    real_frames = zip(layout["honeypot_frames"], layout["honeypot_real_frames"], strict=True)
    pairs = [
        (frame, real)
        for frame, real in real_frames
        if job["start_frame"] <= frame <= job["stop_frame"] and job["type"] == "annotation"
    ]
    return {
        "honeypot_count": len(pairs),
        "honeypot_frames": [frame for frame, _ in pairs],
        "honeypot_real_frames": [real for _, real in pairs],
    }


async def task_layout_read(request: Request) -> Response:
    task_id = path_id(request)
    await permitted(request, Action.CHANGE, "task", task_id)
    return json_response(task_layout_json(await _validation(request, task_id)))


async def task_layout_update(request: Request) -> Response:
    task_id = path_id(request)
    caller = await permitted(request, Action.CHANGE, "task", task_id)
    body = await read_body(request, TaskLayoutPatch)
    seed = secrets.randbits(63)
    await execute(request, lambda unit: change_task_layout(unit, caller, task_id, body, seed))
    return json_response(task_layout_json(await _validation(request, task_id)))


async def _job_and_task_staff(request: Request) -> tuple[Principal, dict[str, Any]]:
    """The caller, if they are on the job's task's staff, and the job."""
    job_id = path_id(request)
    await permitted(request, Action.VIEW, "job", job_id)
    job = await fetch_doc(request, "catalog_jobs", job_id, "job")
    return await permitted(request, Action.CHANGE, "task", job["task_id"]), job


async def job_layout_read(request: Request) -> Response:
    _, job = await _job_and_task_staff(request)
    return json_response(job_layout_json(await _validation(request, job["task_id"]), job))


async def job_layout_update(request: Request) -> Response:
    caller, job = await _job_and_task_staff(request)
    body = await read_body(request, JobLayoutPatch)
    seed = secrets.randbits(63)
    await execute(request, lambda unit: change_job_layout(unit, caller, job["id"], body, seed))
    return json_response(job_layout_json(await _validation(request, job["task_id"]), job))


ROUTES = [
    Route("/api/tasks/{id:int}/validation_layout", task_layout_read, methods=["GET"]),
    Route("/api/tasks/{id:int}/validation_layout", task_layout_update, methods=["PATCH"]),
    Route("/api/jobs/{id:int}/validation_layout", job_layout_read, methods=["GET"]),
    Route("/api/jobs/{id:int}/validation_layout", job_layout_update, methods=["PATCH"]),
]
