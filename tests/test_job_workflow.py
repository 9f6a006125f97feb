"""A job's stage and state as the manual has them (1.7, 2.6, 2.20.2): the assignee sets the
state, the task's people move the job between stages, a stage change starts the state over."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import register
from tests.live_server import LiveServer
from tests.task_setup import upload_task
from tests.test_analytics_api import eventually


@pytest.fixture(scope="module")
def annotator(server: LiveServer) -> httpx.Client:
    return register(server, "flow-annotator")


@pytest.fixture(scope="module")
def reviewer(server: LiveServer) -> httpx.Client:
    return register(server, "flow-reviewer")


@pytest.fixture(scope="module")
def stranger(server: LiveServer) -> httpx.Client:
    return register(server, "flow-stranger")


@pytest.fixture(scope="module")
def jobs(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> list[int]:
    task = upload_task(
        admin, tmp_path_factory.mktemp("frames"), [f"{i}.png" for i in range(10)],
        {"name": "workflow", "labels": [{"name": "car"}], "segment_size": 2},
    )  # fmt: skip
    listed = admin.get("/api/jobs", params={"task_id": task["id"], "sort": "id"}).json()
    return [job["id"] for job in listed["results"]]


def user_id(client: httpx.Client) -> int:
    return client.get("/api/users/self").json()["id"]


def patch(client: httpx.Client, job_id: int, **body: Any) -> httpx.Response:
    return client.patch(f"/api/jobs/{job_id}", json=body)


def stage_state(response: httpx.Response) -> tuple[str, str, str]:
    assert response.status_code == 200, response.text
    job = response.json()
    return job["stage"], job["state"], job["status"]


def test_the_annotator_sets_the_state_but_not_the_stage(
    admin: httpx.Client, annotator: httpx.Client, jobs: list[int]
) -> None:
    job_id = jobs[0]
    patch(admin, job_id, assignee=user_id(annotator))
    assert stage_state(patch(annotator, job_id, state="in progress")) == (
        "annotation", "in progress", "annotation",
    )  # fmt: skip
    finished = patch(annotator, job_id, state="completed")
    assert stage_state(finished) == ("annotation", "completed", "annotation")
    # as in CVAT, sending a stage at all takes the right to change the job, even its own
    for body in (
        {"stage": "validation"},
        {"stage": "acceptance", "state": "completed"},
        {"stage": "annotation", "state": "new"},
    ):
        refused = patch(annotator, job_id, **body)
        assert refused.status_code == 403, refused.text
        assert "detail" in refused.json()
    assert patch(annotator, job_id, assignee=None).status_code == 403
    assert stage_state(admin.get(f"/api/jobs/{job_id}")) == (
        "annotation", "completed", "annotation",
    )  # fmt: skip


def test_a_stage_change_starts_the_state_over_unless_one_is_given(
    admin: httpx.Client, reviewer: httpx.Client, jobs: list[int]
) -> None:
    job_id = jobs[1]
    patch(admin, job_id, state="completed")
    to_review = patch(admin, job_id, stage="validation", assignee=user_id(reviewer))
    assert stage_state(to_review) == ("validation", "new", "validation")
    assert to_review.json()["assignee"]["id"] == user_id(reviewer)
    assert stage_state(patch(reviewer, job_id, state="in progress"))[1] == "in progress"
    # acceptance alone is not done yet: the state starts over; with "completed" it is
    assert stage_state(patch(admin, job_id, stage="acceptance")) == (
        "acceptance", "new", "validation",
    )  # fmt: skip
    assert stage_state(patch(admin, job_id, state="completed")) == (
        "acceptance", "completed", "completed",
    )  # fmt: skip
    back = patch(admin, job_id, stage="annotation", state="in progress")
    assert stage_state(back) == ("annotation", "in progress", "annotation")


def test_the_reviewer_rejects_but_does_not_accept(
    admin: httpx.Client, annotator: httpx.Client, reviewer: httpx.Client, jobs: list[int]
) -> None:
    job_id = jobs[2]
    patch(admin, job_id, assignee=user_id(annotator))
    patch(admin, job_id, stage="validation", assignee=user_id(reviewer))
    refused = patch(reviewer, job_id, stage="acceptance", state="completed")
    assert refused.status_code == 403, refused.text
    # without open issues a rejection stays with the reviewer, in validation
    kept = patch(reviewer, job_id, state="rejected")
    assert stage_state(kept) == ("validation", "rejected", "validation")
    assert kept.json()["assignee"]["id"] == user_id(reviewer)
    issue = reviewer.post(
        "/api/issues",
        json={"frame": 4, "position": [1, 1, 5, 5], "job": job_id, "message": "wrong"},
    )
    assert issue.status_code == 201, issue.text
    # with an open issue it goes back to annotation and to the job's last annotator
    sent_back = patch(reviewer, job_id, state="rejected")
    assert stage_state(sent_back) == ("annotation", "rejected", "annotation")
    assert sent_back.json()["assignee"]["id"] == user_id(annotator)
    assert stage_state(patch(annotator, job_id, state="completed"))[1] == "completed"


def test_bad_transitions_are_refused_naming_the_field(
    admin: httpx.Client, stranger: httpx.Client, jobs: list[int]
) -> None:
    job_id = jobs[3]
    before = admin.get(f"/api/jobs/{job_id}").json()
    for body, field in (
        ({"stage": "review"}, "stage"),
        ({"state": "done"}, "state"),
        ({"stage": 3}, "stage"),
        ({"assignee": 10**9}, "assignee"),
    ):
        response = patch(admin, job_id, **body)
        assert response.status_code == 400, (body, response.text)
        assert field in response.text
    hidden = patch(stranger, job_id, state="completed")
    assert hidden.status_code == 404, hidden.text
    after = admin.get(f"/api/jobs/{job_id}").json()
    assert (after["stage"], after["state"], after["updated_date"]) == (
        before["stage"], before["state"], before["updated_date"],
    )  # fmt: skip


def test_review_rounds_show_in_the_analytics(
    server: LiveServer, admin: httpx.Client, reviewer: httpx.Client, jobs: list[int]
) -> None:
    job_id = jobs[4]
    annotator = register(server, "flow-second-annotator")
    patch(admin, job_id, assignee=user_id(annotator))
    patch(annotator, job_id, state="completed")
    patch(admin, job_id, stage="validation", assignee=user_id(reviewer))
    patch(reviewer, job_id, state="rejected")
    patch(annotator, job_id, state="completed")
    patch(admin, job_id, stage="acceptance", state="completed")

    def review() -> dict[str, Any] | None:
        found = admin.get(f"/api/analytics/jobs/{job_id}").json()["review"]
        return found if found["reviewed_jobs"] else None

    found = eventually(review)
    assert (found["first_pass_acceptance_rate"], found["rejections"]) == (0.0, 1)
    assert found["completion_to_review_seconds"] >= 0
    assert [a["user_id"] for a in found["annotators"]] == [user_id(annotator)]
    mine = annotator.get(f"/api/analytics/users/{user_id(annotator)}").json()["review"]
    assert (mine["reviewed_jobs"], mine["rejection_rounds_per_job"]) == (1, 1.0)
