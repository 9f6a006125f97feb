"""Honeypots (manual 2.20.1): a validation pool made with the task's data, its frames mixed
into every annotation job; the layouts, the frames served, re-rolls and exclusions."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from cvat_sdk import make_client, models

from tests.conftest import register
from tests.images import write_images
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.task_setup import upload_task, wait_for_request
from tests.test_replay import palimpsest

NAMES = [f"img{i:02d}.png" for i in range(12)]
POOL = {
    "mode": "gt_pool",
    "frame_selection_method": "random_uniform",
    "frame_count": 3,
    "frames_per_job_count": 2,
    "random_seed": 7,
}


def pool_task(
    client: httpx.Client, folder: Path, params: dict[str, Any] = POOL, **task: Any
) -> dict[str, Any]:
    spec = {"name": "honeypots", "labels": [{"name": "car"}], "segment_size": 4, **task}
    return upload_task(
        client, folder, NAMES, spec,
        sorting_method="random", validation_params=json.dumps(params),
    )  # fmt: skip


@pytest.fixture(scope="module")
def task(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return pool_task(admin, tmp_path_factory.mktemp("pool"))


def jobs_of(client: httpx.Client, task_id: int) -> list[dict[str, Any]]:
    listed = client.get("/api/jobs", params={"task_id": task_id, "page_size": 100})
    return sorted(listed.json()["results"], key=lambda job: job["id"])


def test_a_pool_task_mixes_validation_frames_into_every_job(
    admin: httpx.Client, task: dict[str, Any]
) -> None:
    # 9 regular frames in jobs of 4 (4, 4, 1), 2 honeypots each, the pool of 3 at the end
    assert task["size"] == 9 + 3 * 2 + 3
    assert task["validation_mode"] == "gt_pool"
    jobs = jobs_of(admin, task["id"])
    annotation = [job for job in jobs if job["type"] == "annotation"]
    (gt,) = [job for job in jobs if job["type"] == "ground_truth"]
    assert [(j["start_frame"], j["stop_frame"]) for j in annotation] == [(0, 5), (6, 11), (12, 14)]
    assert (gt["start_frame"], gt["stop_frame"], gt["frame_count"]) == (15, 17, 3)
    layout = admin.get(f"/api/tasks/{task['id']}/validation_layout").json()
    assert layout["mode"] == "gt_pool"
    assert layout["validation_frames"] == [15, 16, 17]
    assert layout["frames_per_job_count"] == 2
    assert layout["disabled_frames"] == []
    assert layout["honeypot_count"] == 6
    assert set(layout["honeypot_real_frames"]) == {15, 16, 17}  # every pool frame is used
    for job in annotation:
        mine = admin.get(f"/api/jobs/{job['id']}/validation_layout").json()
        assert mine["honeypot_count"] == 2
        assert all(job["start_frame"] <= f <= job["stop_frame"] for f in mine["honeypot_frames"])
        assert len(set(mine["honeypot_real_frames"])) == 2  # no pool frame twice in a job
    assert admin.get(f"/api/jobs/{gt['id']}/validation_layout").json()["honeypot_count"] == 0


def test_honeypot_frames_are_served_with_the_pool_frames_bytes(
    admin: httpx.Client, task: dict[str, Any]
) -> None:
    layout = admin.get(f"/api/tasks/{task['id']}/validation_layout").json()
    meta = admin.get(f"/api/tasks/{task['id']}/data/meta").json()
    names = [frame["name"] for frame in meta["frames"]]
    assert sorted(names[15:]) == names[15:]  # the pool is in natural order
    assert sorted(set(names)) == sorted(NAMES)  # every image once, honeypots repeat the pool's
    for quality in ("original", "compressed"):
        for frame, real in zip(
            layout["honeypot_frames"], layout["honeypot_real_frames"], strict=True
        ):
            assert names[frame] == names[real]
            shown = frame_bytes(admin, task["id"], frame, quality)
            assert shown == frame_bytes(admin, task["id"], real, quality)
    regular = [f for f in range(15) if f not in layout["honeypot_frames"]]
    assert len({names[f] for f in regular}) == 9


def frame_bytes(client: httpx.Client, task_id: int, frame: int, quality: str) -> bytes:
    response = client.get(
        f"/api/tasks/{task_id}/data",
        params={"type": "frame", "number": frame, "quality": quality},
    )
    assert response.status_code == 200, response.text
    return response.content


def test_the_same_seed_lays_a_task_out_the_same_way(
    admin: httpx.Client, task: dict[str, Any], tmp_path: Path
) -> None:
    again = pool_task(admin, tmp_path)
    first = admin.get(f"/api/tasks/{task['id']}/validation_layout").json()
    second = admin.get(f"/api/tasks/{again['id']}/validation_layout").json()
    assert first == second
    names = [f["name"] for f in admin.get(f"/api/tasks/{task['id']}/data/meta").json()["frames"]]
    assert names == [
        f["name"] for f in admin.get(f"/api/tasks/{again['id']}/data/meta").json()["frames"]
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({**POOL, "frame_selection_method": "random_per_job"}, "frame_selection_method"),
        ({k: v for k, v in POOL.items() if k != "frames_per_job_count"}, "frames_per_job_count"),
        ({**POOL, "frame_share": 0.5}, "frame_count"),
        ({**POOL, "frames": ["img01.png"]}, "frames"),
        ({**POOL, "frame_selection_method": "manual"}, "frames"),
        ({**POOL, "frames_per_job_count": 0}, "frames_per_job_count"),
        ({**POOL, "random_seed": -1}, "random_seed"),
        ({**POOL, "mode": "sometimes"}, "mode"),
    ],
)
def test_bad_validation_params_are_refused_naming_the_field(
    admin: httpx.Client, params: dict[str, Any], field: str
) -> None:
    created = admin.post("/api/tasks", json={"name": "bad", "labels": [{"name": "car"}]})
    response = admin.post(
        f"/api/tasks/{created.json()['id']}/data",
        json={"image_quality": 70, "sorting_method": "random", "validation_params": params},
    )
    assert response.status_code == 400, response.text
    assert field in response.text


def test_a_pool_needs_random_sorting_and_no_overlap(admin: httpx.Client) -> None:
    created = admin.post("/api/tasks", json={"name": "bad", "labels": [{"name": "car"}]})
    sorted_data = admin.post(
        f"/api/tasks/{created.json()['id']}/data",
        json={"image_quality": 70, "sorting_method": "natural", "validation_params": POOL},
    )
    assert sorted_data.status_code == 400
    assert "validation_params.mode" in sorted_data.json()
    overlapping = admin.post(
        "/api/tasks",
        json={"name": "bad", "labels": [{"name": "car"}], "segment_size": 4, "overlap": 1},
    )
    response = admin.post(
        f"/api/tasks/{overlapping.json()['id']}/data",
        json={"image_quality": 70, "sorting_method": "random", "validation_params": POOL},
    )
    assert response.status_code == 400
    assert "overlap" in response.text


def test_a_pool_larger_than_the_task_fails_the_request(admin: httpx.Client, tmp_path: Path) -> None:
    created = admin.post("/api/tasks", json={"name": "big pool", "labels": [{"name": "car"}]})
    task_id = created.json()["id"]
    files = [
        (f"client_files[{i}]", (p.name, p.read_bytes(), "image/png"))
        for i, p in enumerate(write_images(tmp_path, NAMES[:3]))
    ]
    response = admin.post(
        f"/api/tasks/{task_id}/data",
        files=files,
        data={
            "sorting_method": "random",
            "validation_params": json.dumps({**POOL, "frame_count": 5}),
        },
    )
    assert response.status_code == 202, response.text
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "failed"
    assert "frame_count" in str(status["message"])


def test_the_ground_truth_job_of_a_pool_cannot_be_deleted(
    admin: httpx.Client, task: dict[str, Any]
) -> None:
    (gt,) = [j for j in jobs_of(admin, task["id"]) if j["type"] == "ground_truth"]
    response = admin.delete(f"/api/jobs/{gt['id']}")
    assert response.status_code == 400
    assert "gt_pool" in response.text


def test_tracks_are_refused_in_a_pool_task(admin: httpx.Client, task: dict[str, Any]) -> None:
    job = jobs_of(admin, task["id"])[0]
    label = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"][0]["id"]
    track = {"label_id": label, "frame": 0, "shapes": [
        {"type": "rectangle", "frame": 0, "points": [1, 1, 5, 5]}]}  # fmt: skip
    response = admin.patch(
        f"/api/jobs/{job['id']}/annotations", params={"action": "create"}, json={"tracks": [track]}
    )
    assert response.status_code == 400
    assert "tracks" in response.json()


def test_layouts_are_for_the_task_staff_only(
    server: Any, admin: httpx.Client, task: dict[str, Any]
) -> None:
    annotator = register(server, "hp-annotator")
    me = annotator.get("/api/users/self").json()
    job = jobs_of(admin, task["id"])[0]
    assert admin.patch(f"/api/jobs/{job['id']}", json={"assignee": me["id"]}).status_code == 200
    assert annotator.get(f"/api/jobs/{job['id']}").status_code == 200
    assert annotator.get(f"/api/jobs/{job['id']}/validation_layout").status_code == 403
    assert annotator.get(f"/api/tasks/{task['id']}/validation_layout").status_code == 403
    patched = annotator.patch(
        f"/api/tasks/{task['id']}/validation_layout", json={"disabled_frames": [15]}
    )
    assert patched.status_code == 403
    stranger = register(server, "hp-stranger")
    assert stranger.get(f"/api/tasks/{task['id']}/validation_layout").status_code == 404


def box(label: int, frame: int, points: list[float]) -> dict[str, Any]:
    return {"type": "rectangle", "label_id": label, "frame": frame, "points": points}


def wait_for(check: Any) -> Any:
    deadline = time.monotonic() + 15
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("the report did not change in time")
        time.sleep(0.1)


def test_the_quality_report_compares_honeypots_with_the_pool(
    admin: httpx.Client, tmp_path: Path
) -> None:
    task = pool_task(admin, tmp_path)
    label = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"][0]["id"]
    layout = admin.get(f"/api/tasks/{task['id']}/validation_layout").json()
    jobs = jobs_of(admin, task["id"])
    (gt,) = [j for j in jobs if j["type"] == "ground_truth"]
    first = next(j for j in jobs if j["type"] == "annotation")
    gt_shapes = [box(label, real, [4, 4, 20 + real, 20]) for real in layout["validation_frames"]]
    assert admin.put(f"/api/jobs/{gt['id']}/annotations", json={"shapes": gt_shapes}).is_success
    mine = admin.get(f"/api/jobs/{first['id']}/validation_layout").json()
    (right, wrong) = mine["honeypot_frames"]
    right_real = mine["honeypot_real_frames"][0]
    shapes = [
        box(label, right, [4, 4, 20 + right_real, 20]),  # as the pool frame it shows
        box(label, wrong, [40, 30, 60, 44]),  # nowhere near
    ]
    regular = next(f for f in range(first["start_frame"], first["stop_frame"] + 1)
                   if f not in mine["honeypot_frames"])  # fmt: skip
    shapes.append(box(label, regular, [1, 1, 9, 9]))  # not a validation frame: not compared
    assert admin.put(f"/api/jobs/{first['id']}/annotations", json={"shapes": shapes}).is_success
    accepted = admin.patch(
        f"/api/jobs/{gt['id']}", json={"stage": "acceptance", "state": "completed"}
    )
    assert accepted.status_code == 200, accepted.text

    def report() -> dict[str, Any] | None:
        found = admin.get("/api/quality/reports", params={"job_id": first["id"]}).json()
        return found["results"][0] if found["results"] else None

    found = wait_for(report)
    data = admin.get(f"/api/quality/reports/{found['id']}/data").json()
    assert data["comparison_summary"]["frames"] == sorted(mine["honeypot_frames"])
    annotations = data["comparison_summary"]["annotations"]
    assert (annotations["valid_count"], annotations["missing_count"]) == (1, 1)
    assert annotations["extra_count"] == 1
    conflicts = admin.get("/api/quality/conflicts", params={"report_id": found["id"]}).json()
    assert {(c["frame"], c["type"]) for c in conflicts["results"]} == {
        (wrong, "missing_annotation"), (wrong, "extra_annotation")}  # fmt: skip

    # an edit of the pool frame reaches every honeypot showing it
    moved = [box(label, right_real, [40, 30, 60, 44])]
    others = [s for s in gt_shapes if s["frame"] != right_real]
    assert admin.put(
        f"/api/jobs/{gt['id']}/annotations", json={"shapes": [*others, *moved]}
    ).is_success

    def moved_report() -> dict[str, Any] | None:
        current = report()
        data = admin.get(f"/api/quality/reports/{current['id']}/data").json()
        return data if data["comparison_summary"]["annotations"]["valid_count"] == 0 else None

    wait_for(moved_report)

    # excluding the pool frame takes its honeypots out of the report
    disabled = admin.patch(
        f"/api/tasks/{task['id']}/validation_layout", json={"disabled_frames": [right_real]}
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled_frames"] == [right_real]

    def without_right() -> dict[str, Any] | None:
        current = report()
        data = admin.get(f"/api/quality/reports/{current['id']}/data").json()
        return data if right not in data["comparison_summary"]["frames"] else None

    assert wrong in wait_for(without_right)["comparison_summary"]["frames"]


def test_honeypots_are_drawn_again_and_set_by_hand(admin: httpx.Client, tmp_path: Path) -> None:
    task = pool_task(admin, tmp_path)
    url = f"/api/tasks/{task['id']}/validation_layout"
    layout = admin.get(url).json()
    label = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"][0]["id"]
    first = jobs_of(admin, task["id"])[0]
    honeypot = layout["honeypot_frames"][0]
    put = admin.put(
        f"/api/jobs/{first['id']}/annotations",
        json={"shapes": [box(label, honeypot, [1, 1, 5, 5])]},
    )
    assert put.is_success
    # by hand: each honeypot shows the next pool frame
    pool = layout["validation_frames"]
    wanted = [pool[(pool.index(r) + 1) % 3] for r in layout["honeypot_real_frames"]]
    changed = admin.patch(
        url, json={"frame_selection_method": "manual", "honeypot_real_frames": wanted}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["honeypot_real_frames"] == wanted
    names = [f["name"] for f in admin.get(f"/api/tasks/{task['id']}/data/meta").json()["frames"]]
    assert names[honeypot] == names[wanted[0]]
    assert frame_bytes(admin, task["id"], honeypot, "original") == frame_bytes(
        admin, task["id"], wanted[0], "original"
    )
    # the honeypot shows another image now: what was drawn on it is gone
    assert admin.get(f"/api/jobs/{first['id']}/annotations").json()["shapes"] == []
    # drawn again at random: as many honeypots, all from the pool
    drawn = admin.patch(url, json={"frame_selection_method": "random_uniform"})
    assert drawn.status_code == 200, drawn.text
    assert drawn.json()["honeypot_frames"] == layout["honeypot_frames"]
    assert set(drawn.json()["honeypot_real_frames"]) <= set(pool)
    # one job's honeypots
    job_url = f"/api/jobs/{first['id']}/validation_layout"
    mine = admin.get(job_url).json()
    one = admin.patch(
        job_url,
        json={"frame_selection_method": "manual", "honeypot_real_frames": [pool[0], pool[1]]},
    )
    assert one.status_code == 200, one.text
    assert one.json()["honeypot_real_frames"] == [pool[0], pool[1]]
    assert one.json()["honeypot_frames"] == mine["honeypot_frames"]
    rerolled = admin.patch(job_url, json={"frame_selection_method": "random_uniform"})
    assert rerolled.status_code == 200 and rerolled.json()["honeypot_count"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"frame_selection_method": "manual", "honeypot_real_frames": [15]},
            "honeypot_real_frames",
        ),
        ({"frame_selection_method": "manual"}, "honeypot_real_frames"),
        (
            {"frame_selection_method": "random_uniform", "honeypot_real_frames": [15]},
            "honeypot_real_frames",
        ),  # fmt: skip
        ({"frame_selection_method": "random_per_job"}, "frame_selection_method"),
        ({"disabled_frames": [0]}, "disabled_frames"),
        ({"disabled_frames": "all"}, "disabled_frames"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_layout_changes_are_refused_naming_the_field(
    admin: httpx.Client, task: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    response = admin.patch(f"/api/tasks/{task['id']}/validation_layout", json=body)
    assert response.status_code == 400, response.text
    assert field in response.text


def test_job_honeypots_keep_their_number_and_come_from_the_active_pool(
    admin: httpx.Client, tmp_path: Path
) -> None:
    task = pool_task(admin, tmp_path)
    job_url = f"/api/jobs/{jobs_of(admin, task['id'])[0]['id']}/validation_layout"
    manual = {"frame_selection_method": "manual"}
    too_many = admin.patch(job_url, json={**manual, "honeypot_real_frames": [15, 16, 17]})
    assert too_many.status_code == 400 and "number of honeypots" in too_many.text
    not_pool = admin.patch(job_url, json={**manual, "honeypot_real_frames": [0, 15]})
    assert not_pool.status_code == 400 and "validation pool" in not_pool.text
    url = f"/api/tasks/{task['id']}/validation_layout"
    assert admin.patch(url, json={"disabled_frames": [15, 16]}).status_code == 200
    disabled = admin.patch(job_url, json={**manual, "honeypot_real_frames": [15, 17]})
    assert disabled.status_code == 400 and "disabled" in disabled.text
    too_few = admin.patch(job_url, json={"frame_selection_method": "random_uniform"})
    assert too_few.status_code == 400 and "restore" in too_few.text
    # disabled pool frames and the honeypots showing them are deleted frames of the task
    layout = admin.get(url).json()
    showing = [f for f, r in zip(layout["honeypot_frames"], layout["honeypot_real_frames"],
                                 strict=True) if r in (15, 16)]  # fmt: skip
    deleted = admin.get(f"/api/tasks/{task['id']}/data/meta").json()["deleted_frames"]
    assert deleted == sorted([15, 16, *showing])
    # the pool's frames are managed through its ground truth job, not the task's meta
    refused = admin.patch(f"/api/tasks/{task['id']}/data/meta", json={"deleted_frames": []})
    assert refused.status_code == 400 and "GT job" in refused.text
    (gt,) = [j for j in jobs_of(admin, task["id"]) if j["type"] == "ground_truth"]
    restored = admin.patch(f"/api/jobs/{gt['id']}/data/meta", json={"deleted_frames": [16]})
    assert restored.status_code == 200, restored.text
    assert restored.json()["deleted_frames"] == [16]
    assert admin.get(url).json()["disabled_frames"] == [16]


def test_tasks_without_a_pool_have_no_honeypots_to_change(
    admin: httpx.Client, tmp_path: Path
) -> None:
    plain = upload_task(admin, tmp_path, NAMES[:4], {"name": "plain", "labels": [{"name": "car"}]})
    url = f"/api/tasks/{plain['id']}/validation_layout"
    assert admin.get(url).json()["mode"] is None
    response = admin.patch(url, json={"disabled_frames": []})
    assert response.status_code == 400 and "not configured" in response.text
    gt = admin.post("/api/jobs", json={"type": "ground_truth", "task_id": plain["id"],
                                       "frame_selection_method": "manual", "frames": [1, 3]})  # fmt: skip
    assert gt.status_code == 201, gt.text
    layout = admin.get(url).json()
    assert (layout["mode"], layout["validation_frames"]) == ("gt", [1, 3])
    assert "honeypot_count" not in layout
    assert admin.get(f"/api/tasks/{plain['id']}").json()["validation_mode"] == "gt"
    refused = admin.patch(url, json={"frame_selection_method": "random_uniform"})
    assert refused.status_code == 400 and "gt_pool" in refused.text
    assert admin.patch(url, json={"disabled_frames": [3]}).json()["disabled_frames"] == [3]
    assert admin.delete(f"/api/jobs/{gt.json()['id']}").status_code == 204
    assert admin.get(url).json()["mode"] is None
    assert admin.get(f"/api/tasks/{plain['id']}").json()["validation_mode"] is None


def test_mode_gt_makes_the_ground_truth_job_with_the_data(
    admin: httpx.Client, tmp_path: Path
) -> None:
    params = {
        "mode": "gt",
        "frame_selection_method": "manual",
        "frames": ["img03.png", "img07.png"],
    }
    task = upload_task(
        admin, tmp_path, NAMES, {"name": "gt", "labels": [{"name": "car"}], "segment_size": 4},
        validation_params=json.dumps(params),
    )  # fmt: skip
    assert task["validation_mode"] == "gt"
    (gt,) = [j for j in jobs_of(admin, task["id"]) if j["type"] == "ground_truth"]
    assert (gt["start_frame"], gt["stop_frame"], gt["frame_count"]) == (3, 7, 2)
    layout = admin.get(f"/api/tasks/{task['id']}/validation_layout").json()
    assert layout["validation_frames"] == [3, 7]
    assert task["size"] == 12  # the task's frames are left as they are


def test_sdk_makes_a_pool_task_and_its_export_and_import_follow_the_manual(
    server: LiveServer, admin: httpx.Client, tmp_path: Path
) -> None:
    images = write_images(tmp_path / "images", NAMES)
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as client:
        client.config.status_check_period = 0.1
        task = client.tasks.create_from_data(
            spec=models.TaskWriteRequest(
                name="sdk pool", labels=[models.PatchedLabelRequest(name="car")], segment_size=4
            ),
            resources=images,
            data_params={"sorting_method": "random", "validation_params": POOL},
        )
        layout, _ = client.api_client.tasks_api.retrieve_validation_layout(task.id)
        assert str(layout.mode) == "gt_pool" and layout.honeypot_count == 6
        first = next(job for job in task.get_jobs() if job.type == "annotation")
        job_layout, _ = client.api_client.jobs_api.retrieve_validation_layout(first.id)
        assert job_layout.honeypot_count == 2
        changed, _ = client.api_client.tasks_api.partial_update_validation_layout(
            task.id,
            patched_task_validation_layout_write_request=models.PatchedTaskValidationLayoutWriteRequest(
                frame_selection_method="random_uniform"
            ),
        )
        assert changed.honeypot_count == 6
        assert client.api_client.tasks_api.retrieve(task.id)[0].validation_mode == "gt_pool"
        task_id = task.id

    layout = admin.get(f"/api/tasks/{task_id}/validation_layout").json()
    label = admin.get("/api/labels", params={"task_id": task_id}).json()["results"][0]["id"]
    jobs = jobs_of(admin, task_id)
    (gt,) = [j for j in jobs if j["type"] == "ground_truth"]
    pool = layout["validation_frames"]
    gt_boxes = [box(label, real, [2, 2, 10 + real, 12]) for real in pool]
    assert admin.put(f"/api/jobs/{gt['id']}/annotations", json={"shapes": gt_boxes}).is_success
    for job in (j for j in jobs if j["type"] == "annotation"):
        shapes = [
            box(label, f, [1, 1, 4, 4]) for f in range(job["start_frame"], job["stop_frame"] + 1)
        ]
        assert admin.put(f"/api/jobs/{job['id']}/annotations", json={"shapes": shapes}).is_success

    exported = admin.post(
        f"/api/tasks/{task_id}/dataset/export", params={"format": "CVAT for images 1.1"}
    )
    status = wait_for_request(admin, exported.json()["rq_id"])
    archive = zipfile.ZipFile(io.BytesIO(admin.get(status["result_url"]).content))
    root = ElementTree.fromstring(archive.read("annotations.xml"))
    written = {int(image.get("id")): image for image in root.iter("image")}
    honeypots = set(layout["honeypot_frames"])
    # honeypots are skipped; the pool frames carry the ground truth
    assert sorted(written) == [f for f in range(18) if f not in honeypots]
    for real in pool:
        (drawn,) = written[real].iter("box")
        assert float(drawn.get("xbr")) == 10 + real

    imported = admin.post(
        f"/api/tasks/{task_id}/annotations",
        params={"format": "CVAT 1.1"},
        files={"annotation_file": ("annotations.xml", archive.read("annotations.xml"))},
    )
    assert imported.status_code == 202, imported.text
    assert wait_for_request(admin, imported.json()["rq_id"])["status"] == "finished"
    gt_shapes = admin.get(f"/api/jobs/{gt['id']}/annotations").json()["shapes"]
    assert sorted((s["frame"], s["points"][2]) for s in gt_shapes) == [(r, 10 + r) for r in pool]
    # every honeypot now holds a copy of its pool frame's ground truth (the manual's warning)
    task_shapes = admin.get(f"/api/tasks/{task_id}/annotations").json()["shapes"]
    on_frames = {s["frame"]: s["points"][2] for s in task_shapes}
    for frame, real in zip(layout["honeypot_frames"], changed.honeypot_real_frames, strict=True):
        assert on_frames[frame] == 10 + real
    assert all(on_frames[f] == 4 for f in range(15) if f not in honeypots)


def test_the_catalog_rebuilt_from_the_log_holds_the_same_layouts(
    server: LiveServer, admin: httpx.Client, nats_url: str, tmp_path: Path
) -> None:
    task = pool_task(admin, tmp_path / "images")
    url = f"/api/tasks/{task['id']}/validation_layout"
    assert admin.patch(url, json={"frame_selection_method": "random_uniform"}).is_success
    assert admin.patch(url, json={"disabled_frames": [16]}).is_success
    before = admin.get(url).json(), admin.get(f"/api/tasks/{task['id']}/data/meta").json()
    verified = palimpsest(server, nats_url, tmp_path / "data", "verify", "--projection", "catalog")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "catalog: same as rebuilt" in verified.stdout
    assert (admin.get(url).json(), admin.get(f"/api/tasks/{task['id']}/data/meta").json()) == before
