"""Quality settings and reports over HTTP: the projection follows every edit on its own."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import register
from tests.live_server import LiveServer
from tests.task_setup import upload_task

FRESH_WITHIN = 15.0  # generous: the projection is nudged on every commit


@pytest.fixture(scope="module")
def setup(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    task = upload_task(
        admin, tmp_path_factory.mktemp("frames"), [f"{i}.png" for i in range(6)],
        {"name": "quality", "labels": [{"name": "car"}, {"name": "person"}], "segment_size": 3},
    )  # fmt: skip
    labels = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"]
    ids = {label["name"]: label["id"] for label in labels}
    jobs = admin.get("/api/jobs", params={"task_id": task["id"], "sort": "id"}).json()["results"]
    gt = admin.post(
        "/api/jobs",
        json={"type": "ground_truth", "task_id": task["id"], "frame_selection_method": "manual",
              "frames": [1, 4]},
    )  # fmt: skip
    assert gt.status_code == 201, gt.text
    return {
        "task": task["id"],
        "labels": ids,
        "jobs": [j["id"] for j in jobs],
        "gt": gt.json()["id"],
    }


def box(label: int, frame: int, points: list[float]) -> dict[str, Any]:
    return {"type": "rectangle", "label_id": label, "frame": frame, "points": points}


def put(client: httpx.Client, job_id: int, **data: Any) -> dict[str, Any]:
    response = client.put(f"/api/jobs/{job_id}/annotations", json=data)
    assert response.status_code == 200, response.text
    return response.json()


def job_report(client: httpx.Client, job_id: int) -> dict[str, Any] | None:
    found = client.get("/api/quality/reports", params={"job_id": job_id}).json()["results"]
    return found[0] if found else None


def wait_for(check: Any) -> Any:
    deadline = time.monotonic() + FRESH_WITHIN
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("the report did not change in time")
        time.sleep(0.1)


def test_reports_need_a_configured_ground_truth_job(
    admin: httpx.Client, setup: dict[str, Any]
) -> None:
    car, person = setup["labels"]["car"], setup["labels"]["person"]
    put(admin, setup["gt"], shapes=[box(car, 1, [10, 10, 50, 50]), box(car, 4, [10, 10, 50, 50])],
        tags=[{"label_id": person, "frame": 4}])  # fmt: skip
    put(admin, setup["jobs"][0], shapes=[box(car, 1, [10, 10, 50, 50]), box(car, 0, [1, 1, 5, 5])])
    put(admin, setup["jobs"][1], shapes=[box(person, 4, [10, 10, 50, 50])])
    refused = admin.post("/api/quality/reports", json={"task_id": setup["task"]})
    assert refused.status_code == 400
    assert "Ground Truth" in refused.text
    accepted = admin.patch(
        f"/api/jobs/{setup['gt']}", json={"stage": "acceptance", "state": "completed"}
    )
    assert accepted.status_code == 200


def test_post_answers_with_the_task_report(admin: httpx.Client, setup: dict[str, Any]) -> None:
    created = admin.post("/api/quality/reports", json={"task_id": setup["task"]})
    assert created.status_code == 202, created.text
    rq_id = created.json()["rq_id"]
    status = admin.get(f"/api/requests/{rq_id}").json()
    assert status["status"] == "finished"
    report = admin.post("/api/quality/reports", params={"rq_id": rq_id})
    assert report.status_code == 201
    task_report = report.json()
    assert task_report["id"] == status["result_id"]
    assert task_report["target"] == "task" and task_report["task_id"] == setup["task"]
    summary = task_report["summary"]
    # job 1: one exact match; job 2: a box with the wrong label and a missing tag
    assert (summary["valid_count"], summary["total_count"]) == (1, 3)
    assert (summary["ds_count"], summary["gt_count"]) == (2, 3)
    assert summary["accuracy"] == 1 / 3
    assert summary["precision"] == 1 / 2 and summary["recall"] == 1 / 3
    assert summary["frame_count"] == 2 and summary["total_frames"] == 6
    assert summary["conflicts_by_type"] == {"mismatching_label": 1, "missing_annotation": 1}
    children = admin.get("/api/quality/reports", params={"parent_id": task_report["id"]}).json()
    assert sorted(r["job_id"] for r in children["results"]) == sorted(setup["jobs"])


def test_others_see_no_quality_of_a_task_they_cannot_see(
    server: LiveServer, admin: httpx.Client, setup: dict[str, Any]
) -> None:
    admin.patch(f"/api/jobs/{setup['gt']}", json={"stage": "acceptance", "state": "completed"})
    created = admin.post("/api/quality/reports", json={"task_id": setup["task"]})
    assert created.status_code == 202, created.text
    status = admin.get(f"/api/requests/{created.json()['rq_id']}").json()
    report_id = status["result_id"]
    assert admin.get(f"/api/quality/reports/{report_id}").status_code == 200
    with register(server, "quality-outsider") as outsider:
        assert outsider.get(f"/api/quality/settings/{setup['task']}").status_code == 404
        settings = outsider.get("/api/quality/settings", params={"task_id": setup["task"]})
        assert settings.json()["count"] == 0
        assert outsider.get("/api/quality/reports").json()["count"] == 0
        assert outsider.get(f"/api/quality/reports/{report_id}").status_code == 404
        assert outsider.get(f"/api/quality/reports/{report_id}/data").status_code == 404
        conflicts = outsider.get("/api/quality/conflicts", params={"report_id": report_id})
        assert conflicts.status_code == 404
        assert outsider.get("/api/quality/conflicts").json()["count"] == 0
        change = outsider.patch(
            f"/api/quality/settings/{setup['task']}", json={"iou_threshold": 0.1}
        )
        assert change.status_code == 404
        asked = outsider.post("/api/quality/reports", json={"task_id": setup["task"]})
        assert asked.status_code == 400  # as for a task that does not exist


def test_job_reports_conflicts_and_data(admin: httpx.Client, setup: dict[str, Any]) -> None:
    first, second = (job_report(admin, job_id) for job_id in setup["jobs"])
    assert first is not None and second is not None
    assert first["summary"]["accuracy"] == 1.0 and first["summary"]["frame_count"] == 1
    assert second["summary"]["error_count"] == 2
    conflicts = admin.get("/api/quality/conflicts", params={"report_id": second["id"]}).json()
    found = sorted((c["type"], c["frame"], c["severity"]) for c in conflicts["results"])
    assert found == [("mismatching_label", 4, "error"), ("missing_annotation", 4, "error")]
    label_conflict = next(c for c in conflicts["results"] if c["type"] == "mismatching_label")
    assert [a["job_id"] for a in label_conflict["annotation_ids"]] == [
        setup["jobs"][1],
        setup["gt"],
    ]
    data = admin.get(f"/api/quality/reports/{second['id']}/data").json()
    assert list(data["frame_results"]) == ["4"]
    assert data["parameters"]["iou_threshold"] == 0.4
    matrix = data["comparison_summary"]["annotations"]["confusion_matrix"]
    assert matrix["labels"] == ["car", "person", "unmatched"]
    assert matrix["rows"] == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert admin.get("/api/quality/reports/999999").status_code == 404


def test_an_edit_changes_the_report_without_any_request(
    admin: httpx.Client, setup: dict[str, Any]
) -> None:
    car, person = setup["labels"]["car"], setup["labels"]["person"]
    put(admin, setup["jobs"][1], shapes=[box(car, 4, [10, 10, 50, 50])],
        tags=[{"label_id": person, "frame": 4}])  # fmt: skip
    report = wait_for(
        lambda: (r := job_report(admin, setup["jobs"][1])) and r["summary"]["accuracy"] == 1.0 and r
    )
    assert report["summary"]["conflict_count"] == 0
    # a ground truth edit re-scores the jobs holding that frame
    put(admin, setup["gt"], shapes=[box(car, 1, [10, 10, 50, 50]), box(car, 4, [300, 300, 340, 340])],
        tags=[{"label_id": person, "frame": 4}])  # fmt: skip
    changed = wait_for(
        lambda: (
            (r := job_report(admin, setup["jobs"][1])) and r["summary"]["valid_count"] == 1 and r
        )
    )
    assert changed["summary"]["conflicts_by_type"] == {
        "extra_annotation": 1,
        "missing_annotation": 1,
    }


def test_settings_are_per_task_with_cvat_defaults_and_rescore(
    admin: httpx.Client, setup: dict[str, Any]
) -> None:
    listed = admin.get("/api/quality/settings", params={"task_id": setup["task"]}).json()
    assert listed["count"] == 1
    settings = listed["results"][0]
    assert settings["task_id"] == setup["task"]
    assert (settings["iou_threshold"], settings["oks_sigma"], settings["line_thickness"]) == (
        0.4, 0.09, 0.01,
    )  # fmt: skip
    assert settings["target_metric"] == "accuracy" and settings["max_validations_per_job"] == 0
    bad = admin.patch(f"/api/quality/settings/{settings['id']}", json={"iou_threshold": 1.5})
    assert bad.status_code == 400 and "iou_threshold" in bad.text
    wrong = admin.patch(f"/api/quality/settings/{settings['id']}", json={"target_metric": "f1"})
    assert wrong.status_code == 400
    # job 1's frame 1 gets a slightly smaller box: IoU 0.9 passes 0.4 but not 0.95
    car = setup["labels"]["car"]
    put(admin, setup["jobs"][0], shapes=[box(car, 1, [10, 10, 50, 46])])
    changed = admin.patch(
        f"/api/quality/settings/{settings['id']}",
        json={"iou_threshold": 0.95, "target_metric": "precision"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["iou_threshold"] == 0.95
    assert admin.get(f"/api/quality/settings/{settings['id']}").json()["target_metric"] == (
        "precision"
    )
    report = wait_for(
        lambda: (
            (r := job_report(admin, setup["jobs"][0]))
            and r["summary"]["conflicts_by_type"].get("missing_annotation") == 1
            and r
        )
    )
    assert report["summary"]["valid_count"] == 0
    assert admin.get("/api/quality/settings/999999").status_code == 404


def test_a_finished_job_gets_immediate_feedback_per_assignee(
    admin: httpx.Client, setup: dict[str, Any]
) -> None:
    job_id = setup["jobs"][0]  # after the test above: its one box misses at IoU 0.95
    plain = admin.patch(f"/api/jobs/{job_id}", json={"state": "completed"})
    assert plain.status_code == 200 and "feedback" not in plain.json()  # not asked for yet
    admin.patch(f"/api/quality/settings/{setup['task']}", json={"max_validations_per_job": 1})
    admin.patch(f"/api/jobs/{job_id}", json={"state": "in progress"})
    finished = admin.patch(f"/api/jobs/{job_id}", json={"state": "completed"})
    assert finished.status_code == 200, finished.text
    assert finished.json()["state"] == "completed"
    feedback = finished.json()["feedback"]
    assert feedback["passed"] is False and feedback["score"] == 0.0
    assert feedback["target_metric"] == "precision" and feedback["frames_to_fix"] == [1]
    assert (feedback["attempt"], feedback["attempts_left"]) == (1, 0)
    admin.patch(f"/api/jobs/{job_id}", json={"state": "in progress"})
    again = admin.patch(f"/api/jobs/{job_id}", json={"state": "completed"})
    assert "feedback" not in again.json()  # no attempts left for this assignee
    me = admin.get("/api/users/self").json()["id"]
    admin.patch(f"/api/jobs/{job_id}", json={"assignee": me, "state": "in progress"})
    other = admin.patch(f"/api/jobs/{job_id}", json={"state": "completed"})
    assert other.json()["feedback"]["attempt"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/jobs", {"type": "ground_truth", "task_id": "one"}),
        ("POST", "/api/jobs", {"type": "ground_truth", "task_id": 1, "frames": ["a"]}),
        ("POST", "/api/jobs", {"type": "ground_truth", "task_id": 999999, "frame_count": 1}),
        ("PATCH", "/api/quality/settings/{task}", {"iou_threshold": "high"}),
        ("PATCH", "/api/quality/settings/{task}", {"max_validations_per_job": -1}),
        ("POST", "/api/quality/reports", {"task_id": "x"}),
        ("POST", "/api/quality/reports", {}),
        ("GET", "/api/quality/reports?task_id=abc", None),
        ("GET", "/api/quality/conflicts?report_id=abc", None),
    ],
)
def test_bad_quality_input_is_a_400_naming_the_field(
    admin: httpx.Client, setup: dict[str, Any], method: str, path: str, body: Any
) -> None:
    response = admin.request(method, path.format(task=setup["task"]), json=body)
    assert response.status_code == 400, response.text
    assert response.json()


def test_deleting_the_ground_truth_job_removes_the_reports(
    admin: httpx.Client, setup: dict[str, Any]
) -> None:
    assert admin.delete(f"/api/jobs/{setup['gt']}").status_code == 204
    wait_for(
        lambda: (
            admin.get("/api/quality/reports", params={"task_id": setup["task"]}).json()["count"]
            == 0
        )
    )
