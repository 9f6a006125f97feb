"""Ground truth jobs: one per task, their frames, their rules (manual 2.20.1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import register
from tests.live_server import LiveServer
from tests.task_setup import upload_task


@pytest.fixture()
def task(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return upload_task(
        admin, tmp_path_factory.mktemp("frames"), [f"{i}.png" for i in range(10)],
        {"name": "gt", "labels": [{"name": "car"}], "segment_size": 5},
    )  # fmt: skip


def make_gt(client: httpx.Client, task_id: int, **fields: Any) -> httpx.Response:
    return client.post("/api/jobs", json={"type": "ground_truth", "task_id": task_id, **fields})


def test_manual_frames_make_a_ground_truth_job_with_those_frames(
    admin: httpx.Client, task: dict[str, Any]
) -> None:
    response = make_gt(admin, task["id"], frame_selection_method="manual", frames=[7, 2, 4])
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["type"] == "ground_truth" and job["task_id"] == task["id"]
    assert (job["start_frame"], job["stop_frame"], job["frame_count"]) == (2, 7, 3)
    listed = admin.get("/api/jobs", params={"task_id": task["id"], "type": "ground_truth"})
    assert [j["id"] for j in listed.json()["results"]] == [job["id"]]
    # its annotations stay out of the task's
    shape = {"type": "rectangle", "label_id": task_label(admin, task), "frame": 2,
             "points": [1, 1, 5, 5]}  # fmt: skip
    put = admin.put(f"/api/jobs/{job['id']}/annotations", json={"shapes": [shape]})
    assert put.status_code == 200, put.text
    assert admin.get(f"/api/tasks/{task['id']}/annotations").json()["shapes"] == []


def task_label(client: httpx.Client, task: dict[str, Any]) -> int:
    return client.get("/api/labels", params={"task_id": task["id"]}).json()["results"][0]["id"]


def test_a_task_has_at_most_one_ground_truth_job_until_it_is_deleted(
    admin: httpx.Client, task: dict[str, Any]
) -> None:
    first = make_gt(admin, task["id"], frame_selection_method="random_uniform", frame_count=3)
    assert first.status_code == 201, first.text
    second = make_gt(admin, task["id"], frame_selection_method="random_uniform", frame_count=3)
    assert second.status_code == 400
    assert "only 1 ground truth job" in second.text
    annotation_job = admin.get("/api/jobs", params={"task_id": task["id"], "type": "annotation"})
    refused = admin.delete(f"/api/jobs/{annotation_job.json()['results'][0]['id']}")
    assert refused.status_code == 400
    assert admin.delete(f"/api/jobs/{first.json()['id']}").status_code == 204
    assert admin.get(f"/api/jobs/{first.json()['id']}").status_code == 404
    again = make_gt(admin, task["id"], frame_selection_method="manual", frames=[0])
    assert again.status_code == 201, again.text


def test_random_selection_is_reproducible_with_a_seed(
    admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    chosen = []
    for _ in range(2):
        task = upload_task(
            admin, tmp_path_factory.mktemp("frames"), [f"{i}.png" for i in range(10)],
            {"name": "seeded", "labels": [{"name": "car"}], "segment_size": 5},
        )  # fmt: skip
        job = make_gt(
            admin, task["id"], frame_selection_method="random_uniform", frame_share=0.5,
            random_seed=42,
        ).json()  # fmt: skip
        assert job["frame_count"] == 5
        chosen.append(annotated_frames(admin, job["id"]))
    assert chosen[0] == chosen[1]


def annotated_frames(client: httpx.Client, job_id: int) -> tuple[int, int, int]:
    job = client.get(f"/api/jobs/{job_id}").json()
    return job["start_frame"], job["stop_frame"], job["frame_count"]


def test_random_per_job_takes_frames_from_every_job(
    admin: httpx.Client, task: dict[str, Any]
) -> None:
    response = make_gt(
        admin, task["id"], frame_selection_method="random_per_job", frames_per_job_count=2
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["frame_count"] == 4
    assert job["start_frame"] <= 4 and job["stop_frame"] >= 5  # both jobs 0-4 and 5-9


@pytest.mark.parametrize(
    "fields",
    [
        {"frame_selection_method": "manual", "frames": [10]},
        {"frame_selection_method": "manual", "frames": []},
        {"frame_selection_method": "random_uniform", "frame_count": 11},
        {"frame_selection_method": "random_uniform"},
        {"frame_selection_method": "random_uniform", "frame_share": 1.5},
        {"frame_selection_method": "random_per_job"},
        {"frame_selection_method": "sometimes", "frame_count": 1},
        {"frame_selection_method": "random_uniform", "frame_count": 1, "random_seed": -1},
    ],
)
def test_bad_frame_selections_are_refused(
    admin: httpx.Client, task: dict[str, Any], fields: dict[str, Any]
) -> None:
    response = make_gt(admin, task["id"], **fields)
    assert response.status_code == 400, response.text
    assert response.json()
    assert (
        admin.get("/api/jobs", params={"task_id": task["id"], "type": "ground_truth"}).json()[
            "count"
        ]
        == 0
    )


def test_only_ground_truth_jobs_are_created_and_only_by_the_task_owner(
    server: LiveServer, admin: httpx.Client, task: dict[str, Any]
) -> None:
    assert make_gt(admin, task["id"], type="annotation").status_code == 400
    stranger = register(server, "gt-stranger")
    assert make_gt(stranger, task["id"], frame_count=1).status_code == 404  # not even visible
    assignee = register(
        server, "gt-job-assignee"
    )  # sees the task through its job, may not change it
    assignee_id = assignee.get("/api/users/self").json()["id"]
    first_job = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]
    admin.patch(f"/api/jobs/{first_job['id']}", json={"assignee": assignee_id})
    assert make_gt(assignee, task["id"], frame_count=1).status_code == 403


def test_a_ground_truth_job_moves_to_acceptance_and_completes(
    admin: httpx.Client, task: dict[str, Any]
) -> None:
    job = make_gt(admin, task["id"], frame_selection_method="manual", frames=[1]).json()
    response = admin.patch(
        f"/api/jobs/{job['id']}", json={"stage": "acceptance", "state": "completed"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
