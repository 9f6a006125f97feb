"""Backups of honeypot ("gt_pool") tasks: the pool, the ground truth job, every honeypot's
place and pool frame and every job's annotations come back from our own archive and from
one shaped as CVAT writes it."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tests.images import write_images
from tests.task_setup import wait_for_request
from tests.test_backup_buckets import bucket
from tests.test_backups import backup, job_annotations, jobs_of, restore, zipped
from tests.test_honeypots import box, frame_bytes, pool_task, wait_for

__all__ = ["bucket"]  # the moto bucket fixture, shared with the backup tests


def layouts(client: httpx.Client, task_id: int) -> dict[str, Any]:
    """The task's layout and each job's (in job order), frame numbers as the task's."""
    listed = client.get("/api/jobs", params={"task_id": task_id, "sort": "id"}).json()["results"]
    return {
        "task": client.get(f"/api/tasks/{task_id}/validation_layout").json(),
        "jobs": [client.get(f"/api/jobs/{j['id']}/validation_layout").json() for j in listed],
    }


def frame_names(client: httpx.Client, task_id: int) -> list[str]:
    meta = client.get(f"/api/tasks/{task_id}/data/meta").json()
    return [frame["name"] for frame in meta["frames"]]


def listed_jobs(client: httpx.Client, task_id: int) -> list[dict[str, Any]]:
    return client.get("/api/jobs", params={"task_id": task_id, "sort": "id"}).json()["results"]


def annotate_pool_task(client: httpx.Client, task_id: int) -> None:
    """Ground truth on every pool frame, a box on two honeypots and one regular frame of
    the first job; one honeypot set by hand, one pool frame left out; the ground truth
    accepted, so the task has quality reports."""
    label = client.get("/api/labels", params={"task_id": task_id}).json()["results"][0]["id"]
    layout = client.get(f"/api/tasks/{task_id}/validation_layout").json()
    jobs = listed_jobs(client, task_id)
    (gt,) = [j for j in jobs if j["type"] == "ground_truth"]
    first = next(j for j in jobs if j["type"] == "annotation")
    mine = client.get(f"/api/jobs/{first['id']}/validation_layout").json()
    # a placement no seed would draw again: the job's two honeypots swap their pool frames
    swapped = list(reversed(mine["honeypot_real_frames"]))
    changed = client.patch(
        f"/api/jobs/{first['id']}/validation_layout",
        json={"frame_selection_method": "manual", "honeypot_real_frames": swapped},
    )
    assert changed.status_code == 200, changed.text
    gt_shapes = [box(label, real, [4, 4, 20 + real, 20]) for real in layout["validation_frames"]]
    assert client.put(f"/api/jobs/{gt['id']}/annotations", json={"shapes": gt_shapes}).is_success
    right, wrong = mine["honeypot_frames"]
    regular = next(f for f in range(first["start_frame"], first["stop_frame"] + 1)
                   if f not in mine["honeypot_frames"])  # fmt: skip
    shapes = [
        box(label, right, [4, 4, 20 + swapped[0], 20]),
        box(label, wrong, [40, 30, 60, 44]),
        box(label, regular, [1, 1, 9, 9]),
    ]
    assert client.put(f"/api/jobs/{first['id']}/annotations", json={"shapes": shapes}).is_success
    unused = sorted(set(layout["validation_frames"]) - set(swapped))
    excluded = client.patch(
        f"/api/tasks/{task_id}/validation_layout", json={"disabled_frames": unused}
    )
    assert excluded.status_code == 200, excluded.text
    accepted = client.patch(
        f"/api/jobs/{gt['id']}", json={"stage": "acceptance", "state": "completed"}
    )
    assert accepted.status_code == 200, accepted.text


def quality_report(client: httpx.Client, task_id: int) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        listed = client.get(
            "/api/quality/reports", params={"task_id": task_id, "target": "task"}
        ).json()
        return listed["results"][0] if listed["results"] else None

    report = wait_for(found)
    data = client.get(f"/api/quality/reports/{report['id']}/data").json()
    return data["comparison_summary"]


def test_a_pool_task_backup_restores_its_layout_honeypots_and_annotations(
    admin: httpx.Client, tmp_path: Path
) -> None:
    source = pool_task(admin, tmp_path)
    annotate_pool_task(admin, source["id"])
    content = backup(admin, "task", source["id"])
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        meta = json.loads(archive.read("task.json"))
        media = [n for n in archive.namelist() if n.startswith("data/") and n.endswith(".png")]
    assert meta["data"]["validation_layout"]["mode"] == "gt_pool"
    assert meta["data"]["custom_segments"] is True
    assert len(media) == len(set(media)) == 12  # each image once, honeypots not again
    assert all("files" in job for job in meta["jobs"])

    status = restore(admin, "task", content)
    assert status["status"] == "finished", status
    task_id = status["result_id"]
    assert admin.get(f"/api/tasks/{task_id}").json()["validation_mode"] == "gt_pool"
    assert layouts(admin, task_id) == layouts(admin, source["id"])
    assert frame_names(admin, task_id) == frame_names(admin, source["id"])
    assert jobs_of(admin, task_id) == jobs_of(admin, source["id"])
    assert job_annotations(admin, task_id) == job_annotations(admin, source["id"])
    old = admin.get(f"/api/tasks/{source['id']}/data/meta").json()["deleted_frames"]
    assert admin.get(f"/api/tasks/{task_id}/data/meta").json()["deleted_frames"] == old
    layout = layouts(admin, task_id)["task"]
    for frame in [*layout["honeypot_frames"], *layout["validation_frames"]]:
        for quality in ("original", "compressed"):
            assert frame_bytes(admin, task_id, frame, quality) == frame_bytes(
                admin, source["id"], frame, quality
            )
    assert quality_report(admin, task_id) == quality_report(admin, source["id"])


def cvat_pool_archive(tmp_path: Path) -> dict[str, bytes | str]:
    """A honeypot task as CVAT 2.x writes its backup: 4 regular images in two jobs, a pool of
    two, one honeypot a job; the pool listed in another order than its ground truth job's;
    a consensus replica of the first job (left out here)."""
    names = ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png"]
    images = write_images(tmp_path, names)
    label = {"name": "car", "color": "#fa3253", "type": "any", "svg": "", "sublabels": [],
             "attributes": []}  # fmt: skip
    task = {
        "name": "pool by cvat", "bug_tracker": "", "status": "annotation", "subset": "",
        "labels": [label], "version": "1.0", "consensus_replicas": 1,
        "data": {"chunk_size": 72, "image_quality": 70, "start_frame": 0, "stop_frame": 7,
                 "chunk_type": "imageset", "storage_method": "cache", "storage": "local",
                 "sorting_method": "random", "deleted_frames": [], "custom_segments": True,
                 "validation_layout": {"mode": "gt_pool", "frame_selection_method": "manual",
                                       "frames_per_job_count": 1,
                                       "frames": ["f.png", "e.png"]}},
        "jobs": [
            {"start_frame": 0, "stop_frame": 2, "frames": [], "status": "annotation",
             "type": "annotation", "files": ["b.png", "f.png", "a.png"]},
            {"start_frame": 0, "stop_frame": 2, "frames": [], "status": "annotation",
             "type": "consensus_replica", "files": ["b.png", "f.png", "a.png"]},
            {"start_frame": 3, "stop_frame": 5, "frames": [], "status": "completed",
             "type": "annotation", "files": ["c.png", "d.png", "e.png"]},
            {"start_frame": 6, "stop_frame": 7, "frames": [6, 7], "status": "completed",
             "type": "ground_truth", "files": ["e.png", "f.png"]},
        ],
    }  # fmt: skip

    def shape(frame: int, x: float) -> dict[str, Any]:
        return {"type": "rectangle", "occluded": False, "outside": False, "z_order": 0,
                "rotation": 0.0, "points": [x, 2.0, x + 10, 12.0], "frame": frame, "group": 0,
                "source": "manual", "attributes": [], "elements": [], "label": "car"}  # fmt: skip

    annotations = [
        {"version": 0, "tags": [], "shapes": [shape(1, 5.0)], "tracks": []},
        {"version": 0, "tags": [], "shapes": [shape(2, 30.0)], "tracks": []},  # the replica's
        {"version": 0, "tags": [], "shapes": [shape(5, 40.0)], "tracks": []},
        {"version": 0, "tags": [], "shapes": [shape(6, 6.0), shape(7, 5.0)], "tracks": []},
    ]
    manifest = [{"version": "1.1"}, {"type": "images"}] + [
        {"name": name.removesuffix(".png"), "extension": ".png", "width": 64, "height": 48,
         "meta": {}}
        for name in ["d.png", "a.png", "f.png", "c.png", "e.png", "b.png"]
    ]  # fmt: skip
    return {
        "task.json": json.dumps(task),
        "annotations.json": json.dumps(annotations),
        "data/manifest.jsonl": "".join(json.dumps(line) + "\n" for line in manifest),
        "data/index.json": json.dumps({str(i): 30 + 70 * i for i in range(6)}),
        **{f"data/{path.name}": path.read_bytes() for path in images},
    }


def test_a_pool_task_archive_as_cvat_writes_it_is_restored(
    admin: httpx.Client, tmp_path: Path
) -> None:
    members = cvat_pool_archive(tmp_path)
    status = restore(admin, "task", zipped(members))
    assert status["status"] == "finished", status
    task_id = status["result_id"]
    assert frame_names(admin, task_id) == [
        "b.png", "f.png", "a.png", "c.png", "d.png", "e.png", "e.png", "f.png"
    ]  # fmt: skip
    layout = admin.get(f"/api/tasks/{task_id}/validation_layout").json()
    assert layout["validation_frames"] == [6, 7]
    assert (layout["honeypot_frames"], layout["honeypot_real_frames"]) == ([1, 5], [7, 6])
    assert layout["frames_per_job_count"] == 1
    jobs = listed_jobs(admin, task_id)
    assert [(j["type"], j["start_frame"], j["stop_frame"], j["status"]) for j in jobs] == [
        ("annotation", 0, 2, "annotation"),
        ("annotation", 3, 5, "completed"),
        ("ground_truth", 6, 7, "completed"),
    ]
    assert admin.get(f"/api/jobs/{jobs[0]['id']}/validation_layout").json()[
        "honeypot_real_frames"
    ] == [7]
    assert frame_bytes(admin, task_id, 1, "original") == members["data/f.png"]
    assert frame_bytes(admin, task_id, 5, "original") == members["data/e.png"]
    shapes = [
        [(s["frame"], s["points"][0]) for s in job["shapes"]]
        for job in job_annotations(admin, task_id)
    ]
    assert shapes == [[(1, 5.0)], [(5, 40.0)], [(6, 6.0), (7, 5.0)]]
    # the honeypot agreeing with its pool frame is valid, the other is not
    summary = quality_report(admin, task_id)
    assert summary["annotations"]["valid_count"] == 1
    assert summary["frames"] == [1, 5]


def test_a_pool_archive_whose_jobs_do_not_place_the_frames_is_refused(
    admin: httpx.Client, tmp_path: Path
) -> None:
    members = cvat_pool_archive(tmp_path)
    task = json.loads(members["task.json"])
    before = admin.get("/api/tasks").json()["count"]
    cases = {
        "files missing": lambda t: t["jobs"][0].pop("files"),
        "pool unlike the ground truth job": lambda t: t["data"]["validation_layout"].update(
            frames=["a.png", "e.png"]
        ),
        "a file the archive lacks": lambda t: t["jobs"][2].update(
            files=["c.png", "d.png", "x.png"]
        ),
        "a regular file twice": lambda t: t["jobs"][2].update(files=["c.png", "b.png", "e.png"]),
    }
    for name, change in cases.items():
        broken = json.loads(json.dumps(task))
        change(broken)
        response = admin.post(
            "/api/tasks/backup/",
            files={"task_file": ("b.zip", zipped({**members, "task.json": json.dumps(broken)}),
                                 "application/zip")},
        )  # fmt: skip
        assert response.status_code == 400, (name, response.text)
        assert "task.json" in json.dumps(response.json()), name
    assert admin.get("/api/tasks").json()["count"] == before


def test_a_project_backup_restores_its_pool_task(admin: httpx.Client, tmp_path: Path) -> None:
    project = admin.post("/api/projects", json={"name": "pools", "labels": [{"name": "car"}]})
    assert project.status_code == 201, project.text
    source = pool_task(admin, tmp_path, project_id=project.json()["id"], labels=[])
    annotate_pool_task(admin, source["id"])
    status = restore(admin, "project", backup(admin, "project", project.json()["id"]))
    assert status["status"] == "finished", status
    (task,) = admin.get("/api/tasks", params={"project_id": status["result_id"]}).json()["results"]
    assert layouts(admin, task["id"]) == layouts(admin, source["id"])
    assert job_annotations(admin, task["id"]) == job_annotations(admin, source["id"])


def test_a_lightweight_backup_of_a_pool_task_takes_its_media_from_the_bucket_again(
    admin: httpx.Client, bucket: tuple[Any, int], tmp_path: Path
) -> None:
    s3, storage_id = bucket
    keys = []
    for path in write_images(tmp_path, [f"{i}.png" for i in range(8)]):
        keys.append(f"pool/{path.name}")
        s3.upload_file(str(path), "frames", keys[-1])
    created = admin.post(
        "/api/tasks", json={"name": "cloud pool", "labels": [{"name": "car"}], "segment_size": 3}
    ).json()
    params = {"mode": "gt_pool", "frame_selection_method": "random_uniform", "frame_count": 2,
              "frames_per_job_count": 1, "random_seed": 3}  # fmt: skip
    body = {"cloud_storage_id": storage_id, "server_files": keys, "sorting_method": "random",
            "validation_params": params}  # fmt: skip
    started = admin.post(f"/api/tasks/{created['id']}/data", json=body)
    assert started.status_code == 202, started.text
    assert wait_for_request(admin, started.json()["rq_id"])["status"] == "finished"
    content = backup(admin, "task", created["id"], lightweight="True")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert [n for n in archive.namelist() if n.startswith("data/")] == ["data/manifest.jsonl"]

    status = restore(admin, "task", content)
    assert status["status"] == "finished", status
    copy = status["result_id"]
    assert layouts(admin, copy) == layouts(admin, created["id"])
    assert frame_names(admin, copy) == frame_names(admin, created["id"])
    for number in layouts(admin, copy)["task"]["honeypot_frames"]:
        assert frame_bytes(admin, copy, number, "original") == frame_bytes(
            admin, created["id"], number, "original"
        )
