"""The analytics projection against a scripted workload with controlled event times.

Events are made through the real writer (and so land in the real log) by commands that give
each event its timestamp; the projection then follows the log as the server's follower does.
Every expected figure below is worked out by hand from the script.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.annotations import LabeledData, ObjectIds, Shape, Tag, Track, TrackedShape
from core.client_events import ClientEventBatch
from core.commands import CommandContext
from core.jobs import Job
from core.object_counts import object_frames, visible_frames
from core.permissions import Principal
from core.storage import StorageSpec
from core.tasks import Task
from core.undo import redo, undo
from infra.runtime import Runtime
from infra.settings import ConfigError, Settings
from projections.analytics import AnalyticsProjection, checksum
from projections.analytics_reads import figures
from projections.follower import ProjectionFollower

ALICE, BOB = 101, 102
TASK, PROJECT = 1, 7
JOB1, JOB2 = 1, 2  # frames 0-9 and 10-19
DAY1 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
NOW = DAY2 + timedelta(seconds=600)


def box(ident: int, frame: int = 0, x: float = 1.0) -> Shape:
    return Shape(type="rectangle", label_id=1, frame=frame, points=[x, 1, 5, 5], id=ident)


def keyframe(frame: int, outside: bool = False) -> TrackedShape:
    return TrackedShape(type="rectangle", frame=frame, points=[1, 1, 5, 5], outside=outside)


def track(ident: int, *keyframes: TrackedShape) -> Track:
    return Track(label_id=1, frame=keyframes[0].frame, shapes=list(keyframes), id=ident)


@pytest.fixture(scope="module")
def runtime(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("data")))
    opened = Runtime.open(settings, database_url)
    yield opened
    opened.close()


def run(runtime: Runtime, actor: int | None, command: Callable[[Any], object]) -> None:
    runtime.writer.submit_sync(command, CommandContext(actor, f"test-{uuid.uuid4()}"))


def make_task(
    unit: Any,
    task_id: int = TASK,
    project_id: int | None = PROJECT,
    jobs: tuple = ((JOB1, 0), (JOB2, 10)),
) -> None:
    unit.add(
        Task._start(
            task_id,
            task_id=task_id,
            name="t",
            owner_id=ALICE,
            assignee_id=None,
            project_id=project_id,
            bug_tracker="",
            overlap=None,
            segment_size=10,
            subset="",
            labels=[],
            source_storage=StorageSpec(1, "local"),
            target_storage=StorageSpec(2, "local"),
            organization_id=None,
        )
    )
    for job_id, start in jobs:
        unit.add(
            Job._start(
                job_id,
                job_id=job_id,
                task_id=task_id,
                start_frame=start,
                stop_frame=start + 9,
                job_type="annotation",
            )
        )


def at(job_id: int, moment: datetime, event: type, **fields: Any) -> Callable[[Any], None]:
    def command(unit: Any) -> None:
        unit.get(Job, job_id).trigger_event(event, timestamp=moment, **fields)

    return command


def created(job_id: int, moment: datetime, **objects: Any) -> Callable[[Any], None]:
    return at(job_id, moment, Job.AnnotationsCreated, data=LabeledData(**objects))


def client_events(job_id: int, moment: datetime) -> Callable[[Any], None]:
    def command(unit: Any) -> None:
        batch = ClientEventBatch._create(
            ClientEventBatch.ClientEventsPosted,
            id=ClientEventBatch.stream_id("scripted"),
            actor=BOB,
            command_id=None,
            timestamp=moment,
            batch_id="scripted",
            events=[{"scope": "change:frame", "job_id": job_id, "timestamp": moment.isoformat()}],
        )
        unit.add(batch)

    return command


@pytest.fixture(scope="module")
def workload(runtime: Runtime) -> Runtime:
    """Two users, two jobs, two UTC days; idle cut-off 300 s (the default)."""
    s = timedelta(seconds=1)
    run(runtime, ALICE, make_task)
    script: list[tuple[int, Callable[[Any], None]]] = [
        # Day 1, job 1. Alice: 0 (first), +60, +120, +300 (gap 1200), +20, +300 (gap 2200)
        (ALICE, at(JOB1, DAY1, Job.Updated, changes={"state": "in progress"})),
        (ALICE, created(JOB1, DAY1 + 60 * s, shapes=[box(1), box(2)])),
        (BOB, created(JOB1, DAY1 + 100 * s, tags=[Tag(label_id=1, frame=0, id=20)])),
        # visible on frames 2-4 and 7-9: 6 frames
        (
            ALICE,
            created(
                JOB1,
                DAY1 + 180 * s,
                tracks=[track(10, keyframe(2), keyframe(5, True), keyframe(7))],
            ),
        ),  # fmt: skip
        (BOB, created(JOB1, DAY1 + 350 * s, shapes=[box(21)])),  # Bob: +250
        (
            ALICE,
            at(
                JOB1,
                DAY1 + 1380 * s,
                Job.AnnotationsUpdated,
                data=LabeledData(shapes=[box(1, x=2)]),
            ),
        ),  # fmt: skip
        (ALICE, at(JOB1, DAY1 + 1400 * s, Job.AnnotationsDeleted, ids=ObjectIds(shapes=[2]))),
        (ALICE, at(JOB1, DAY1 + 3600 * s, Job.Updated, changes={"state": "completed"})),
        # Day 2. Alice in job 1: +300 (capped). Bob in job 2: 0, +10, +30, +60 (client event)
        (ALICE, created(JOB1, DAY2, shapes=[box(3)])),
        (BOB, at(JOB2, DAY2 - 10 * s, Job.Updated, changes={"state": "in progress"})),
        (BOB, created(JOB2, DAY2, tracks=[track(30, keyframe(15))])),  # frames 15-19: 5
        (
            BOB,
            at(
                JOB2,
                DAY2 + 30 * s,
                Job.AnnotationsUpdated,
                data=LabeledData(tracks=[track(30, keyframe(15), keyframe(18, True))]),
            ),
        ),  # fmt: skip
        (BOB, client_events(JOB2, DAY2 + 90 * s)),
    ]
    for actor, command in script:
        run(runtime, actor, command)
    runtime.analytics.catch_up()
    return runtime


def read(runtime: Runtime, target: Any, ident: int, **options: Any) -> dict[str, Any]:
    with runtime.pool.connection() as conn:
        return figures(conn.cursor(), target, ident, now=NOW, **options)


def per_day(result: dict[str, Any]) -> list[tuple[str, int, int, int, float]]:
    return [
        (d["date"], d["created"], d["updated"], d["deleted"], d["active_seconds"])
        for d in result["days"]
    ]


def test_job_figures_per_day_active_time_annotation_time_and_speed(workload: Runtime) -> None:
    job = read(workload, "job", JOB1)
    assert per_day(job) == [("2026-03-02", 5, 1, 1, 800 + 250), ("2026-03-03", 1, 0, 0, 300)]
    assert job["annotation_seconds"] == 3600
    assert job["days"][0]["annotation_speed"] == pytest.approx(5 * 3600 / 1050)
    # shape 1, track 10 (6 frames), tag 20, shape 21, shape 3
    assert job["total_object_count"] == 10
    assert job["total_active_seconds"] == 1350
    assert job["total_annotation_speed"] == pytest.approx(10 * 3600 / 1350)
    users = {u["user_id"]: u for u in job["users"]}
    assert (users[ALICE]["created"], users[ALICE]["active_seconds"]) == (4, 1100)
    assert (users[BOB]["created"], users[BOB]["active_seconds"]) == (2, 250)


def test_open_in_progress_interval_counts_until_now_and_track_update_recounts_frames(
    workload: Runtime,
) -> None:
    job = read(workload, "job", JOB2)
    assert per_day(job) == [("2026-03-03", 1, 1, 0, 10 + 30 + 60)]
    assert job["annotation_seconds"] == 610
    assert job["total_object_count"] == 3  # frames 15-17, then outside


def test_task_project_and_user_figures_and_date_ranges(workload: Runtime) -> None:
    task = read(workload, "task", TASK)
    assert per_day(task) == [("2026-03-02", 5, 1, 1, 1050), ("2026-03-03", 2, 1, 0, 400)]
    assert task["annotation_seconds"] == 3600 + 610
    assert task["total_object_count"] == 13
    assert read(workload, "project", PROJECT)["days"] == task["days"]
    alice = read(workload, "user", ALICE)
    assert per_day(alice) == [("2026-03-02", 3, 1, 1, 800), ("2026-03-03", 1, 0, 0, 300)]
    assert alice["total_object_count"] == 1 + 6 + 1
    assert alice["annotation_seconds"] is None
    bob = read(workload, "user", BOB)
    assert per_day(bob) == [("2026-03-02", 2, 0, 0, 250), ("2026-03-03", 1, 1, 0, 100)]
    assert bob["total_object_count"] == 1 + 1 + 3
    day2 = read(workload, "task", TASK, start=date(2026, 3, 3), end=date(2026, 3, 3))
    assert (day2["created"], day2["updated"], day2["deleted"]) == (2, 1, 0)
    assert day2["active_seconds"] == 400
    assert day2["annotation_speed"] == pytest.approx(2 * 3600 / 400)
    assert day2["total_object_count"] == 13  # totals are not filtered by date, as in CVAT


def test_rebuild_from_zero_gives_the_same_figures(workload: Runtime) -> None:
    before = [read(workload, "task", TASK), read(workload, "user", BOB)]
    with workload.pool.connection() as conn:
        digests = [checksum(conn.cursor(), job) for job in (JOB1, JOB2)]
    workload.analytics.rebuild()
    assert [read(workload, "task", TASK), read(workload, "user", BOB)] == before
    with workload.pool.connection() as conn:
        assert [checksum(conn.cursor(), job) for job in (JOB1, JOB2)] == digests


def test_idle_cut_off_is_configurable(workload: Runtime) -> None:
    projection = workload.analytics.projection
    assert isinstance(projection, AnalyticsProjection)
    projection.idle_cutoff = 60.0
    try:
        workload.analytics.rebuild()
        alice = read(workload, "user", ALICE)
        # gaps 60, 120, 1200, 20, 2200 capped at 60; day 2 capped at 60
        assert per_day(alice)[0][4] == 60 + 60 + 60 + 20 + 60
        assert per_day(alice)[1][4] == 60
    finally:
        projection.idle_cutoff = 300.0
        workload.analytics.rebuild()


def test_undo_and_redo_count_as_the_edits_they_make(workload: Runtime) -> None:
    carol, job = Principal(103, "carol", is_superuser=True), 3  # may annotate job 3
    run(workload, None, lambda unit: make_task(unit, 2, None, ((job, 0),)))
    now = datetime.now(UTC)
    run(workload, carol.id, created(job, now, shapes=[box(40), box(41)]))
    run(workload, carol.id, lambda unit: undo(unit, carol, job))  # deletes both
    run(workload, carol.id, lambda unit: redo(unit, carol, job))  # creates both again
    moved = LabeledData(shapes=[box(40, x=3)])
    run(workload, carol.id, at(job, now, Job.AnnotationsUpdated, data=moved))
    run(workload, carol.id, lambda unit: undo(unit, carol, job))  # updates 40 back
    workload.analytics.catch_up()
    result = read(workload, "job", job)
    assert (result["created"], result["updated"], result["deleted"]) == (4, 2, 2)
    assert result["total_object_count"] == 2
    assert read(workload, "user", carol.id)["created"] == 4


def test_object_frames() -> None:
    assert visible_frames(track(1, keyframe(5)), stop_frame=9) == 5
    assert visible_frames(track(1, keyframe(0), keyframe(4)), stop_frame=9) == 10
    assert visible_frames(track(1, keyframe(0, True), keyframe(4)), stop_frame=9) == 6
    assert visible_frames(track(1, keyframe(3, True)), stop_frame=9) == 0
    skeleton = Shape(type="skeleton", label_id=1, frame=0, elements=[box(2), box(3), box(4)])
    assert object_frames(skeleton, 9) == 3
    tracked_skeleton = Track(
        label_id=1, frame=0, elements=[track(2, keyframe(8)), track(3, keyframe(9))]
    )
    assert object_frames(tracked_skeleton, 9) == 3


def test_one_follower_leads_and_another_takes_over(workload: Runtime) -> None:
    """Followers on two 'instances': one leads and keeps the projection at the log's end; when
    it stops, the other takes the lock and carries on."""
    runner, dave, job = workload.analytics, 104, 4
    run(workload, None, lambda unit: make_task(unit, 3, None, ((job, 0),)))

    async def scenario() -> None:
        first, second = (
            ProjectionFollower(
                runner, workload.database_url, 7319002, poll_interval=0.05, lock_retry=0.05
            )
            for _ in range(2)
        )
        tasks = [asyncio.create_task(f.run()) for f in (first, second)]
        try:
            await until(lambda: first.leading or second.leading)
            await asyncio.sleep(0.2)
            assert [first.leading, second.leading].count(True) == 1
            leader, other = (first, second) if first.leading else (second, first)
            await asyncio.to_thread(run, workload, dave, created(job, NOW, shapes=[box(50)]))
            end = workload.store.recorder.max_notification_id()
            await until(lambda: runner.position() == end)
            leader.stop()
            await until(lambda: other.leading)
            await asyncio.to_thread(run, workload, dave, created(job, NOW, shapes=[box(51)]))
            end = workload.store.recorder.max_notification_id()
            await until(lambda: runner.position() == end)
        finally:
            for follower in (first, second):
                follower.stop()
            await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert read(workload, "job", job)["total_object_count"] == 2


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_idle_cut_off_setting(runtime: Runtime) -> None:
    env = {"PALIMPSEST_ANALYTICS_IDLE_CUTOFF": "90"}
    assert Settings.from_env(env).analytics_idle_cutoff == 90.0
    assert Settings.from_env({}).analytics_idle_cutoff == 300.0
    for bad in ("soon", "0", "-5", "nan", "inf"):
        with pytest.raises(ConfigError, match="PALIMPSEST_ANALYTICS_IDLE_CUTOFF"):
            Settings.from_env({"PALIMPSEST_ANALYTICS_IDLE_CUTOFF": bad})
    projection = runtime.analytics.projection
    assert isinstance(projection, AnalyticsProjection)
    assert projection.idle_cutoff == runtime.settings.analytics_idle_cutoff
