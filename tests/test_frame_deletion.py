"""Deleting and restoring frames (PATCH .../data/meta): hidden from navigation, annotation
reads and exports, kept in the log, refused as targets of new annotations."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from cvat_sdk import make_client

from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.task_setup import upload_task, wait_for_request

LABELS = [{"name": "car"}]


@pytest.fixture()
def task(admin: httpx.Client, tmp_path: Path) -> dict[str, Any]:
    made = upload_task(
        admin,
        tmp_path,
        [f"{i}.png" for i in range(6)],
        {"name": "frames", "labels": LABELS, "segment_size": 3},
    )
    label_id = admin.get("/api/labels", params={"task_id": made["id"]}).json()["results"][0]["id"]
    shapes = [
        {"type": "rectangle", "label_id": label_id, "frame": f, "points": [1, 1, 5, 5]}
        for f in range(6)
    ]
    tags = [{"label_id": label_id, "frame": 2}]
    written = admin.put(
        f"/api/tasks/{made['id']}/annotations/", json={"shapes": shapes, "tags": tags}
    )
    assert written.status_code == 200, written.text
    jobs = admin.get("/api/jobs", params={"task_id": made["id"]}).json()["results"]
    return {**made, "label_id": label_id, "jobs": sorted(j["id"] for j in jobs)}


def frames_of(data: dict[str, Any]) -> list[int]:
    return sorted(s["frame"] for s in data["shapes"]) + [-1] + [t["frame"] for t in data["tags"]]


def test_deleted_frames_hide_annotations_and_restoring_brings_them_back(
    admin: httpx.Client, task: dict[str, Any]
) -> None:
    task_id = task["id"]
    meta = admin.patch(f"/api/tasks/{task_id}/data/meta", json={"deleted_frames": [2, 4]})
    assert meta.status_code == 200, meta.text
    assert meta.json()["deleted_frames"] == [2, 4]
    assert admin.get(f"/api/tasks/{task_id}/data/meta").json()["deleted_frames"] == [2, 4]
    first_job, second_job = task["jobs"]
    assert admin.get(f"/api/jobs/{second_job}/data/meta").json()["deleted_frames"] == [4]

    task_annotations = admin.get(f"/api/tasks/{task_id}/annotations").json()
    assert frames_of(task_annotations) == [0, 1, 3, 5, -1]
    assert frames_of(admin.get(f"/api/jobs/{first_job}/annotations").json()) == [0, 1, -1]

    # A PUT of what the client sees keeps the hidden objects.
    kept = admin.put(f"/api/jobs/{first_job}/annotations", json={"shapes": [], "tags": []})
    assert kept.status_code == 200, kept.text
    assert frames_of(kept.json()) == [-1]

    restored = admin.patch(f"/api/tasks/{task_id}/data/meta", json={"deleted_frames": [4]})
    assert restored.json()["deleted_frames"] == [4]
    assert frames_of(admin.get(f"/api/jobs/{first_job}/annotations").json()) == [2, -1, 2]

    # The job's meta PATCH changes only the job's range.
    by_job = admin.patch(f"/api/jobs/{second_job}/data/meta", json={"deleted_frames": []})
    assert by_job.status_code == 200, by_job.text
    assert admin.get(f"/api/tasks/{task_id}/data/meta").json()["deleted_frames"] == []
    assert frames_of(admin.get(f"/api/tasks/{task_id}/annotations").json()) == [2, 3, 4, 5, -1, 2]


def test_annotating_a_deleted_frame_is_refused(admin: httpx.Client, task: dict[str, Any]) -> None:
    task_id, label_id = task["id"], task["label_id"]
    admin.patch(f"/api/tasks/{task_id}/data/meta", json={"deleted_frames": [1]})
    before = admin.get(f"/api/tasks/{task_id}/annotations").json()
    shape = {"type": "rectangle", "label_id": label_id, "frame": 1, "points": [1, 1, 5, 5]}
    for target in (f"/api/tasks/{task_id}", f"/api/jobs/{task['jobs'][0]}"):
        response = admin.patch(
            f"{target}/annotations", params={"action": "create"}, json={"shapes": [shape]}
        )
        assert response.status_code == 400, response.text
        assert "frame 1 is deleted" in json.dumps(response.json())
    assert admin.get(f"/api/tasks/{task_id}/annotations").json() == before


def test_bad_deleted_frames_are_refused(admin: httpx.Client, task: dict[str, Any]) -> None:
    task_id = task["id"]
    for body, field in (
        ({"deleted_frames": [6]}, "deleted_frames"),
        ({"deleted_frames": [1, 1]}, "deleted_frames"),
        ({"deleted_frames": "all"}, "deleted_frames"),
    ):
        response = admin.patch(f"/api/tasks/{task_id}/data/meta", json=body)
        assert response.status_code == 400, response.text
        assert field in json.dumps(response.json())
    outside_job = admin.patch(
        f"/api/jobs/{task['jobs'][0]}/data/meta", json={"deleted_frames": [4]}
    )
    assert outside_job.status_code == 400
    assert admin.get(f"/api/tasks/{task_id}/data/meta").json()["deleted_frames"] == []


def test_a_user_who_cannot_see_the_task_gets_404(
    server: LiveServer, admin: httpx.Client, task: dict[str, Any]
) -> None:
    stranger = register(server, "frames-stranger")
    response = stranger.patch(f"/api/tasks/{task['id']}/data/meta", json={"deleted_frames": [0]})
    assert response.status_code == 404
    assert admin.get(f"/api/tasks/{task['id']}/data/meta").json()["deleted_frames"] == []


def test_export_leaves_deleted_frames_out(admin: httpx.Client, task: dict[str, Any]) -> None:
    task_id = task["id"]
    admin.patch(f"/api/tasks/{task_id}/data/meta", json={"deleted_frames": [0, 3]})
    response = admin.post(
        f"/api/tasks/{task_id}/dataset/export",
        params={"format": "COCO 1.0", "save_images": "true"},
    )
    assert response.status_code == 202, response.text
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "finished", status
    archive = zipfile.ZipFile(io.BytesIO(admin.get(status["result_url"]).content))
    images = sorted(n for n in archive.namelist() if n.startswith("images/"))
    assert images == [f"images/default/{i}.png" for i in (1, 2, 4, 5)]
    coco = json.loads(archive.read("annotations/instances_default.json"))
    assert sorted(i["file_name"] for i in coco["images"]) == [f"{i}.png" for i in (1, 2, 4, 5)]
    assert len(coco["annotations"]) == 4


def test_a_track_is_exported_without_its_deleted_frames(
    admin: httpx.Client, task: dict[str, Any]
) -> None:
    task_id = task["id"]
    track = {
        "label_id": task["label_id"], "frame": 0,
        "shapes": [
            {"type": "rectangle", "frame": 0, "points": [0, 0, 10, 10]},
            {"type": "rectangle", "frame": 2, "points": [20, 20, 30, 30]},
        ],
    }  # fmt: skip
    first_job = task["jobs"][0]
    written = admin.put(f"/api/jobs/{first_job}/annotations", json={"tracks": [track]})
    assert written.status_code == 200, written.text
    admin.patch(f"/api/tasks/{task_id}/data/meta", json={"deleted_frames": [1]})
    stored = admin.get(f"/api/jobs/{first_job}/annotations").json()["tracks"][0]
    assert [s["frame"] for s in stored["shapes"]] == [0, 2]  # the track itself is unchanged
    # A track with a keyframe on a deleted frame goes back as the client got it.
    admin.patch(f"/api/tasks/{task_id}/data/meta", json={"deleted_frames": [1, 2]})
    resent = admin.patch(
        f"/api/jobs/{first_job}/annotations", params={"action": "update"},
        json={"tracks": [{**stored, "attributes": []}]},
    )  # fmt: skip
    assert resent.status_code == 200, resent.text
    admin.patch(f"/api/tasks/{task_id}/data/meta", json={"deleted_frames": [1]})
    response = admin.post(f"/api/jobs/{first_job}/dataset/export", params={"format": "COCO 1.0"})
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "finished", status
    assert "outside the task" not in status["message"]
    archive = zipfile.ZipFile(io.BytesIO(admin.get(status["result_url"]).content))
    coco = json.loads(archive.read("annotations/instances_default.json"))
    image_of = {image["id"]: image["file_name"] for image in coco["images"]}
    boxes = sorted((image_of[a["image_id"]], a["bbox"]) for a in coco["annotations"])
    assert boxes == [("0.png", [0.0, 0.0, 10.0, 10.0]), ("2.png", [20.0, 20.0, 10.0, 10.0])]


def test_cvat_sdk_removes_frames(server: LiveServer, task: dict[str, Any]) -> None:
    with make_client(server.url, credentials=("admin", ADMIN_PASSWORD)) as client:
        sdk_task = client.tasks.retrieve(task["id"])
        sdk_task.remove_frames_by_ids([0, 5])
        assert sdk_task.get_meta().deleted_frames == [0, 5]
        annotations = sdk_task.get_annotations()
        assert sorted(s.frame for s in annotations.shapes) == [1, 2, 3, 4]
