"""Time travel: every past version and every past moment of a job reads back exactly."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from core.jobs import Job
from tests.task_setup import upload_task


@pytest.fixture(scope="module")
def job(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    task = upload_task(
        admin,
        tmp_path_factory.mktemp("frames"),
        [f"{i}.png" for i in range(5)],
        {"name": "travel", "labels": [{"name": "car"}, {"name": "tree"}]},
    )
    labels = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"]
    job_id = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]["id"]
    return {"id": job_id, "labels": [label["id"] for label in labels]}


def random_edit(rng: random.Random, state: dict[str, Any], labels: list[int]) -> tuple[str, Any]:
    shapes = state["shapes"]

    def box() -> dict[str, Any]:
        x, y = rng.randint(0, 50), rng.randint(0, 50)
        return {
            "type": "rectangle", "label_id": rng.choice(labels), "frame": rng.randint(0, 4),
            "points": [x, y, x + rng.random() * 20 + 1, y + rng.random() * 20 + 1],
        }  # fmt: skip

    choice = rng.random()
    if choice < 0.35 or not shapes:
        return "create", {"shapes": [box() for _ in range(rng.randint(1, 3))]}
    if choice < 0.6:
        target = rng.choice(shapes)
        return "update", {"shapes": [{**target, "points": box()["points"]}]}
    if choice < 0.75:
        return "delete", {"shapes": [rng.choice(shapes)]}
    if choice < 0.85:
        return "put", {"shapes": [box() for _ in range(rng.randint(0, 4))]}
    return "tag", {"tags": [{"label_id": rng.choice(labels), "frame": rng.randint(0, 4)}]}


def test_every_version_and_moment_reads_back(admin: httpx.Client, job: dict[str, Any]) -> None:
    rng = random.Random(20261125)
    url = f"/api/jobs/{job['id']}/annotations/"
    recorded: dict[int, dict[str, Any]] = {}
    moments: list[tuple[datetime, int]] = []
    state = admin.get(url).json()
    recorded[state["version"]] = state
    for _ in range(40):
        action, body = random_edit(rng, state, job["labels"])
        if action == "put":
            response = admin.put(url, json=body)
        elif action == "tag":
            response = admin.patch(url, params={"action": "create"}, json=body)
        else:
            response = admin.patch(url, params={"action": action}, json=body)
        assert response.status_code == 200, response.text
        state = admin.get(url).json()
        recorded[state["version"]] = state
        moments.append((datetime.now(UTC), state["version"]))
        time.sleep(0.005)

    assert len(recorded) > 30
    for version, expected in recorded.items():
        if version == 1:
            continue  # version 1 is the job's creation, before any annotation
        travelled = admin.get(url, params={"at_version": version}).json()
        assert travelled == expected, version
    for moment, version in moments:
        travelled = admin.get(url, params={"at": moment.isoformat()}).json()
        assert travelled == recorded[version]


def test_bad_time_travel_requests(admin: httpx.Client, job: dict[str, Any]) -> None:
    url = f"/api/jobs/{job['id']}/annotations/"
    assert admin.get(url, params={"at_version": 10**6}).status_code == 404
    assert admin.get(url, params={"at_version": "x"}).status_code == 400
    assert admin.get(url, params={"at": "yesterday"}).status_code == 400
    assert admin.get(url, params={"at": "2026-01-01T00:00:00"}).status_code == 400  # no zone
    assert admin.get(url, params={"at": "2001-01-01T00:00:00Z"}).status_code == 404
    assert admin.get(url, params={"at": "2001-01-01T00:00:00Z", "at_version": 2}).status_code == 400


def test_time_travel_works_past_snapshots(
    server: Any, admin: httpx.Client, job: dict[str, Any]
) -> None:
    """Enough edits for several snapshots; old versions still read back exactly."""
    url = f"/api/jobs/{job['id']}/annotations/"
    box = {"type": "rectangle", "label_id": job["labels"][0], "frame": 0, "points": [0, 0, 1, 1]}
    created = admin.patch(url, params={"action": "create"}, json={"shapes": [box]}).json()
    shape = created["shapes"][0]
    expected: dict[int, list[float]] = {}
    for step in range(420):
        moved = {**shape, "points": [step, step, step + 1.5, step + 2.25]}
        admin.patch(url, params={"action": "update"}, json={"shapes": [moved]})
        now = admin.get(url).json()
        expected[now["version"]] = moved["points"]
    server.runtime.snapshots.drain()
    with psycopg.connect(server.database_url) as conn:
        snapshots = conn.execute(
            "SELECT count(*) FROM palimpsest_snapshots WHERE originator_id = %s",
            (Job.stream_id(job["id"]),),
        ).fetchone()[0]
    assert snapshots >= 2
    for version in (min(expected), 150, 201, 250, 401, max(expected)):
        if version not in expected:
            continue
        old = admin.get(url, params={"at_version": version}).json()
        points = next(s["points"] for s in old["shapes"] if s["id"] == shape["id"])
        assert points == expected[version]
