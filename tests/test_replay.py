"""`palimpsest replay` rebuilds the read models from the log to what they were; `verify`
finds where a live read model differs from its rebuild; the annotation index holds every
job's current objects."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from infra.event_decoding import FastMapper
from projections import registry
from projections.annotation_index import AnnotationIndexProjection
from projections.follower import ProjectionFollower
from projections.runner import ProjectionRunner
from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.room_client import RoomClient
from tests.task_setup import upload_task

PALIMPSEST = str(Path(sys.executable).parent / "palimpsest")
TABLES = ("catalog_users", "catalog_projects", "catalog_tasks", "catalog_labels", "job_history")


def snapshot(database_url: str) -> dict[str, list[str]]:
    with psycopg.connect(database_url) as conn:
        return {
            table: sorted(str(row) for row in conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in TABLES
        }


def test_replay_rebuilds_identical_read_models(
    server: LiveServer, admin: httpx.Client, nats_url: str, tmp_path: Path
) -> None:
    project = admin.post("/api/projects", json={"name": "p", "labels": [{"name": "a"}]}).json()
    admin.post("/api/tasks", json={"name": "t", "project_id": project["id"]})
    admin.patch(f"/api/projects/{project['id']}", json={"name": "renamed"})
    before = snapshot(server.database_url)
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        conn.execute('UPDATE catalog_projects SET doc = doc || \'{"name": "corrupted"}\'')
    done = palimpsest(server, nats_url, tmp_path, "replay")
    assert done.returncode == 0, done.stderr
    assert "catalog rebuilt" in done.stdout and "history rebuilt" in done.stdout
    assert snapshot(server.database_url) == before


def palimpsest(
    server: LiveServer, nats_url: str, data_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PALIMPSEST_DATABASE_URL": server.database_url,
        "PALIMPSEST_NATS_URL": nats_url,
        "PALIMPSEST_DATA_DIR": str(data_dir),
    }
    return subprocess.run([PALIMPSEST, *args], env=env, capture_output=True, text=True, timeout=180)


def box(label: int, frame: int, x: float) -> dict[str, Any]:
    return {"type": "rectangle", "label_id": label, "frame": frame, "points": [x, x, x + 5, x + 5]}


@pytest.fixture(scope="module")
def workload(
    server: LiveServer, admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Projects, tasks and jobs; every kind of object; updates, deletes, a deleted label, a
    deleted task, undo and redo."""
    frames = tmp_path_factory.mktemp("frames")
    note = {"name": "note", "mutable": True, "input_type": "text", "values": [""]}
    project = admin.post(
        "/api/projects",
        json={"name": "roads", "labels": [{"name": "car", "attributes": [note]}, {"name": "bike"}]},
    ).json()
    labels = admin.get("/api/labels", params={"project_id": project["id"]}).json()["results"]
    car, bike = sorted(label["id"] for label in labels)
    note_id = next(label for label in labels if label["id"] == car)["attributes"][0]["id"]
    in_project = upload_task(
        admin, frames, [f"p{i}.png" for i in range(6)],
        {"name": "in project", "project_id": project["id"], "segment_size": 3},
    )  # fmt: skip
    alone = upload_task(
        admin, frames, [f"a{i}.png" for i in range(3)],
        {"name": "alone", "labels": [{"name": "tree"}, {"name": "rock"}]},
    )  # fmt: skip
    doomed = upload_task(
        admin, frames, [f"d{i}.png" for i in range(2)],
        {"name": "doomed", "project_id": project["id"]},
    )  # fmt: skip
    jobs = {
        name: [
            j["id"]
            for j in admin.get("/api/jobs", params={"task_id": task["id"], "sort": "id"}).json()[
                "results"
            ]
        ]
        for name, task in (("project", in_project), ("alone", alone), ("doomed", doomed))
    }
    tree, rock = sorted(
        label["id"]
        for label in admin.get("/api/labels", params={"task_id": alone["id"]}).json()["results"]
    )
    first, second = jobs["project"]
    body = {
        "tags": [{"label_id": car, "frame": 0}],
        "shapes": [
            box(car, 0, 1), box(car, 1, 2), box(bike, 2, 3),
            {**box(car, 2, 4), "attributes": [{"spec_id": note_id, "value": 'a\\b\t"c\n'}]},
            {"type": "polygon", "label_id": car, "frame": 1, "points": [0, 0, 9, 0, 9, 9]},
        ],
        "tracks": [{"label_id": bike, "frame": 0, "shapes": [
            {"type": "rectangle", "frame": 0, "points": [1, 1, 4, 4]},
            {"type": "rectangle", "frame": 2, "points": [2, 2, 5, 5], "outside": True},
        ]}],
    }  # fmt: skip
    put = admin.put(f"/api/jobs/{first}/annotations", json=body)
    assert put.status_code == 200, put.text
    shapes = put.json()["shapes"]
    moved = {**shapes[0], "points": [7, 7, 9, 9]}
    patched = admin.patch(
        f"/api/jobs/{first}/annotations",
        params={"action": "update"},
        json={"shapes": [moved]},
    )
    assert patched.status_code == 200, patched.text
    deleted = admin.patch(
        f"/api/jobs/{first}/annotations",
        params={"action": "delete"},
        json={"shapes": [shapes[1]]},
    )
    assert deleted.status_code == 200, deleted.text
    for job, label in ((second, car), (jobs["alone"][0], tree), (jobs["doomed"][0], car)):
        created = admin.patch(
            f"/api/jobs/{job}/annotations",
            params={"action": "create"},
            json={"shapes": [box(label, 3 if job == second else 0, 4)], "tags": []},
        )
        assert created.status_code == 200, created.text
    admin.patch(
        f"/api/jobs/{jobs['alone'][0]}/annotations",
        params={"action": "create"},
        json={"shapes": [box(rock, 1, 5)]},
    )
    # the label rock goes, and its shape with it; the doomed task goes with its job
    assert (
        admin.patch(
            f"/api/tasks/{alone['id']}", json={"labels": [{"id": rock, "deleted": True}]}
        ).status_code
        == 200
    )
    assert admin.delete(f"/api/tasks/{doomed['id']}").status_code == 204
    key = httpx.post(
        f"{server.url}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    ).json()["key"]
    client = RoomClient(server.url, second, key)
    made = client.command({"type": "create", "shapes": [box(bike, 4, 20), box(car, 5, 30)]})
    assert made["type"] == "ack", made
    made_id = made["result"]["shapes"][0]["id"]
    changed = client.command(
        {"type": "update", "kind": "shape", "id": made_id, "base": made["version"],
         "changes": {"points": [21, 21, 22, 22]}}
    )  # fmt: skip
    assert changed["type"] == "ack", changed
    assert client.command({"type": "undo"})["type"] == "ack"
    assert client.command({"type": "undo"})["type"] == "ack"
    assert client.command({"type": "redo"})["type"] == "ack"
    client.socket.close()
    admin.patch(f"/api/tasks/{alone['id']}/data/meta", json={"deleted_frames": [2]})
    admin.patch(f"/api/projects/{project['id']}", json={"name": "streets"})
    return {"project": project["id"], "jobs": jobs, "car": car, "bike": bike}


def wait_for_index(server: LiveServer) -> None:
    """Until the annotation index has applied the whole log."""
    assert server.runtime is not None
    end = server.runtime.store.recorder.max_notification_id() or 0
    deadline = time.monotonic() + 30
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT position FROM projection_tracking WHERE name = 'annotation_index'"
            ).fetchone()
            if row and row[0] >= end:
                return
            time.sleep(0.05)
    raise AssertionError("the annotation index did not catch up")


def indexed(database_url: str, job_id: int) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT kind, data FROM annotation_index WHERE job_id = %s ORDER BY object_id",
            (job_id,),
        ).fetchall()
    return {kind: [data for k, data in rows if k == kind] for kind in ("tag", "shape", "track")}


def test_the_annotation_index_holds_every_jobs_current_objects(
    server: LiveServer, admin: httpx.Client, workload: dict[str, Any]
) -> None:
    wait_for_index(server)
    live_jobs = [*workload["jobs"]["project"], *workload["jobs"]["alone"]]
    for job in live_jobs:
        current = admin.get(f"/api/jobs/{job}/annotations").json()
        index = indexed(server.database_url, job)
        by_id = lambda objects: sorted(objects, key=lambda o: o["id"])  # noqa: E731
        assert index["tag"] == by_id(current["tags"])
        assert index["shape"] == by_id(current["shapes"])
        assert index["track"] == by_id(current["tracks"])
    assert indexed(server.database_url, workload["jobs"]["doomed"][0]) == {
        "tag": [], "shape": [], "track": []
    }  # fmt: skip
    # a cross-job question is one query
    expected = sum(
        1
        for job in workload["jobs"]["project"]
        for shape in admin.get(f"/api/jobs/{job}/annotations").json()["shapes"]
        if shape["type"] == "rectangle" and shape["label_id"] == workload["car"]
    )
    with psycopg.connect(server.database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM annotation_index WHERE project_id = %s"
            " AND label_id = %s AND kind = 'shape' AND type = 'rectangle'",
            (workload["project"], workload["car"]),
        ).fetchone()
    assert row == (expected, 2)


def test_search_answers_cross_job_questions_from_the_index(
    server: LiveServer, admin: httpx.Client, workload: dict[str, Any]
) -> None:
    wait_for_index(server)
    project = workload["project"]
    found = admin.get(
        "/api/annotations/search",
        params={"project_id": project, "label": "car", "type": "rectangle", "page_size": 2},
    )
    assert found.status_code == 200, found.text
    body = found.json()
    expected = [
        shape["id"]
        for job in workload["jobs"]["project"]
        for shape in admin.get(f"/api/jobs/{job}/annotations").json()["shapes"]
        if shape["type"] == "rectangle" and shape["label_id"] == workload["car"]
    ]
    assert body["count"] == len(expected) and len(body["results"]) == 2
    everything = admin.get(
        "/api/annotations/search",
        params={"project_id": project, "label": "car", "type": "rectangle", "page_size": "all"},
    ).json()
    assert sorted(r["id"] for r in everything["results"]) == sorted(expected)
    assert {r["project_id"] for r in everything["results"]} == {project}
    assert all(r["kind"] == "shape" and r["updated_by"] == 1 for r in everything["results"])
    tracks = admin.get(
        "/api/annotations/search", params={"kind": "track", "frame": 1, "project_id": project}
    ).json()
    assert tracks["count"] == 1 and tracks["results"][0]["frame"] == 0
    bad = admin.get("/api/annotations/search", params={"kind": "box", "frame": "x"})
    assert bad.status_code == 400 and "kind" in bad.json()
    unknown = admin.get("/api/annotations/search", params={"colour": "red"})
    assert unknown.status_code == 400 and "colour" in unknown.text
    assert httpx.get(f"{server.url}/api/annotations/search").status_code == 401
    with register(server, "search-outsider") as outsider:  # sees none of admin's jobs
        hidden = outsider.get("/api/annotations/search", params={"project_id": project})
    assert hidden.status_code == 200 and hidden.json()["count"] == 0


def test_the_fast_decoder_gives_the_stores_events(
    server: LiveServer, workload: dict[str, Any]
) -> None:
    assert server.runtime is not None
    store = server.runtime.store
    fast = FastMapper(store)
    notifications = store.recorder.select_notifications(start=1, limit=10_000)
    topics = set()
    for notification in notifications:
        expected = store.mapper.to_domain_event(notification)
        decoded = fast.to_domain_event(notification)
        assert type(decoded) is type(expected)
        assert decoded.__dict__ == expected.__dict__, notification.topic
        topics.add(notification.topic.rsplit(".", 1)[-1])
    assert {
        "AnnotationsCreated", "AnnotationsDeleted", "EditUndone", "Updated", "FramesDeleted"
    } <= topics  # fmt: skip


def test_verify_finds_no_difference_after_replay(
    server: LiveServer, nats_url: str, tmp_path: Path, workload: dict[str, Any]
) -> None:
    replayed = palimpsest(server, nats_url, tmp_path, "replay")
    assert replayed.returncode == 0, replayed.stderr
    for name in ("catalog", "history", "annotation_index"):
        assert f"{name} rebuilt" in replayed.stdout
    assert "events/s" in replayed.stderr  # the progress bar
    verified = palimpsest(server, nats_url, tmp_path, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for name in ("catalog", "history", "annotation_index"):
        assert f"{name}: same as rebuilt" in verified.stdout


def test_verify_names_the_projection_and_job_of_a_corrupted_row(
    server: LiveServer, nats_url: str, tmp_path: Path, workload: dict[str, Any]
) -> None:
    wait_for_index(server)
    job = workload["jobs"]["project"][1]
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE annotation_index SET label_id = -1 WHERE object_id ="
            " (SELECT min(object_id) FROM annotation_index WHERE job_id = %s)",
            (job,),
        )
    verified = palimpsest(server, nats_url, tmp_path, "verify")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert "catalog: same as rebuilt" in verified.stdout
    assert "annotation_index: DIFFERS" in verified.stdout
    assert f"annotation_index: annotation_index job_id {job}: 1 row(s) only in the live" in (
        verified.stdout
    )
    assert (
        palimpsest(
            server, nats_url, tmp_path, "replay", "--projection", "annotation_index"
        ).returncode
        == 0
    )
    again = palimpsest(server, nats_url, tmp_path, "verify", "--projection", "annotation_index")
    assert again.returncode == 0, again.stdout


def test_replay_of_one_projection_touches_only_that_one(
    server: LiveServer, nats_url: str, tmp_path: Path, workload: dict[str, Any]
) -> None:
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        conn.execute('UPDATE catalog_projects SET doc = doc || \'{"name": "wrong"}\'')
        conn.execute("UPDATE job_history SET actor = -1 WHERE version = 1")
    replayed = palimpsest(server, nats_url, tmp_path, "replay", "--projection", "catalog")
    assert replayed.returncode == 0, replayed.stderr
    assert "catalog rebuilt" in replayed.stdout and "history" not in replayed.stdout
    verified = palimpsest(server, nats_url, tmp_path, "verify")
    assert verified.returncode == 1
    assert "catalog: same as rebuilt" in verified.stdout
    assert "history: DIFFERS" in verified.stdout
    assert "annotation_index: same as rebuilt" in verified.stdout
    fixed = palimpsest(server, nats_url, tmp_path, "replay", "--projection", "history")
    assert fixed.returncode == 0
    assert palimpsest(server, nats_url, tmp_path, "verify").returncode == 0


def test_replay_while_serving_loses_no_write(
    server: LiveServer, admin: httpx.Client, nats_url: str, tmp_path: Path, workload: dict[str, Any]
) -> None:
    job = workload["jobs"]["project"][0]
    statuses: list[int] = []
    reads: list[int] = []
    stop = threading.Event()

    def edit() -> None:
        with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as c:
            while not stop.is_set():
                sent = c.patch(
                    f"/api/jobs/{job}/annotations",
                    params={"action": "create"},
                    json={"shapes": [box(workload["car"], 0, len(statuses))]},
                )
                statuses.append(sent.status_code)
                reads.append(c.get("/api/projects").status_code)

    editor = threading.Thread(target=edit)
    editor.start()
    try:
        replayed = palimpsest(server, nats_url, tmp_path, "replay")
    finally:
        stop.set()
        editor.join()
    assert replayed.returncode == 0, replayed.stderr
    assert statuses and set(statuses) == {200} and set(reads) == {200}
    wait_for_index(server)
    verified = palimpsest(server, nats_url, tmp_path, "verify")
    assert verified.returncode == 0, verified.stdout
    shapes = admin.get(f"/api/jobs/{job}/annotations").json()["shapes"]
    assert indexed(server.database_url, job)["shape"] == sorted(shapes, key=lambda s: s["id"])


def test_one_follower_of_the_annotation_index_leads_across_instances(
    server: LiveServer, workload: dict[str, Any]
) -> None:
    assert server.runtime is not None
    runtime = server.runtime

    async def second_instance() -> bool:
        runner = ProjectionRunner(runtime.store, runtime.pool, AnnotationIndexProjection())
        lock_key = registry.FOLLOWED["annotation_index"]
        follower = ProjectionFollower(runner, runtime.database_url, lock_key, lock_retry=0.05)
        task = asyncio.create_task(follower.run())
        await asyncio.sleep(0.5)
        leading = follower.leading
        follower.stop()
        await task
        return leading

    assert asyncio.run(second_instance()) is False  # the server's own follower holds the lock
    wait_for_index(server)
