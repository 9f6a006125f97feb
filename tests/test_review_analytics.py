"""Review analytics against a scripted workload with controlled event times: first-pass
acceptance, rejection rounds and the wait from completion to a verdict, per annotator.

The script goes through the real writer and log (see tests/test_analytics.py); every expected
figure is worked out by hand from it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.jobs import Job
from infra.runtime import Runtime
from tests.test_analytics import at, make_task, read, run, runtime  # noqa: F401

OWNER, ANN1, ANN2, REVIEWER = 200, 201, 202, 203
TASK, PROJECT = 50, 51
JOB_A, JOB_B, JOB_C, JOB_D = 50, 51, 52, 53
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def moved(job_id: int, seconds: int, **changes: Any) -> Any:
    return at(job_id, T0 + timedelta(seconds=seconds), Job.Updated, changes=changes)


@pytest.fixture(scope="module")
def reviews(runtime: Runtime) -> Runtime:  # noqa: F811
    run(
        runtime,
        OWNER,
        lambda unit: make_task(
            unit, TASK, PROJECT, ((JOB_A, 0), (JOB_B, 10), (JOB_C, 20), (JOB_D, 30))
        ),
    )
    script = [
        (OWNER, moved(JOB_A, 0, assignee_id=ANN1)),
        (OWNER, moved(JOB_B, 0, assignee_id=ANN1)),
        (OWNER, moved(JOB_C, 0, assignee_id=ANN2)),
        (OWNER, moved(JOB_D, 0, assignee_id=ANN2)),
        # C: completed at 500, in validation at 600, accepted at 2300: first pass, waited 1800
        (ANN2, moved(JOB_C, 500, state="completed")),
        (OWNER, moved(JOB_C, 600, stage="validation", state="new", assignee_id=REVIEWER)),
        (OWNER, moved(JOB_C, 2300, stage="acceptance", state="completed")),
        # A: completed at 1000, reviewed from 1500, accepted at 4600: first pass, waited 3600
        (ANN1, moved(JOB_A, 1000, state="completed")),
        (OWNER, moved(JOB_A, 1500, stage="validation", state="new", assignee_id=REVIEWER)),
        (OWNER, moved(JOB_A, 4600, stage="acceptance", state="new")),
        # B: completed at 2000, rejected with issues at 2600 (sent back to ANN1; waited 600),
        # completed at 3000, rejected at 3300 (stays in validation; waited 300), given to
        # ANN2 at 3400, completed at 4000, accepted straight from annotation at 4900 (900)
        (ANN1, moved(JOB_B, 2000, state="completed")),
        (OWNER, moved(JOB_B, 2100, stage="validation", state="new", assignee_id=REVIEWER)),
        (REVIEWER, moved(JOB_B, 2600, state="rejected", stage="annotation", assignee_id=ANN1)),
        (ANN1, moved(JOB_B, 3000, state="completed")),
        (OWNER, moved(JOB_B, 3100, stage="validation", state="new", assignee_id=REVIEWER)),
        (REVIEWER, moved(JOB_B, 3300, state="rejected")),
        (OWNER, moved(JOB_B, 3400, stage="annotation", state="new", assignee_id=ANN2)),
        (ANN2, moved(JOB_B, 4000, state="completed")),
        (OWNER, moved(JOB_B, 4900, stage="acceptance", state="completed")),
        # D: completed, never judged: counts nowhere
        (ANN2, moved(JOB_D, 700, state="completed")),
    ]
    for actor, command in script:
        run(runtime, actor, command)
    runtime.analytics.catch_up()
    return runtime


def figures_of(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (
        entry["reviewed_jobs"],
        entry["first_pass_accepted"],
        entry["first_pass_acceptance_rate"],
        entry["rejections"],
        entry["rejection_rounds_per_job"],
        entry["completion_to_review_seconds"],
    )


def test_task_review_figures_and_per_annotator(reviews: Runtime) -> None:
    review = read(reviews, "task", TASK)["review"]
    # verdicts: A accepted (3600); B rejected (600), rejected (300), accepted (900);
    # C accepted (1800)
    assert figures_of(review) == pytest.approx((3, 2, 2 / 3, 2, 2 / 3, 7200 / 5))
    by_user = {entry["user_id"]: figures_of(entry) for entry in review["annotators"]}
    assert by_user == {
        ANN1: pytest.approx((2, 1, 0.5, 2, 1.0, (3600 + 600 + 300) / 3)),
        ANN2: pytest.approx((2, 1, 0.5, 0, 0.0, (900 + 1800) / 2)),
    }
    assert read(reviews, "project", PROJECT)["review"] == review


def test_job_and_annotator_review_figures(reviews: Runtime) -> None:
    assert figures_of(read(reviews, "job", JOB_B)["review"]) == pytest.approx(
        (1, 0, 0.0, 2, 2.0, (600 + 300 + 900) / 3)
    )
    assert figures_of(read(reviews, "job", JOB_A)["review"]) == (1, 1, 1.0, 0, 0.0, 3600.0)
    unjudged = read(reviews, "job", JOB_D)["review"]
    assert figures_of(unjudged) == (0, 0, None, 0, None, None)
    assert unjudged["annotators"] == []
    mine = read(reviews, "user", ANN1)["review"]
    assert figures_of(mine) == pytest.approx((2, 1, 0.5, 2, 1.0, 1500.0))
    assert "annotators" not in mine
    assert figures_of(read(reviews, "user", REVIEWER)["review"]) == (0, 0, None, 0, None, None)


def test_review_figures_survive_a_rebuild(reviews: Runtime) -> None:
    before = [read(reviews, "task", TASK)["review"], read(reviews, "user", ANN2)["review"]]
    reviews.analytics.rebuild()
    after = [read(reviews, "task", TASK)["review"], read(reviews, "user", ANN2)["review"]]
    assert after == before
