"""Quality reports as a projection: every annotation job of a task with a configured ground
truth job compared with it, kept current by following the log.

Events only say what is dirty (a task, or some frames of some jobs); the comparison reads the
jobs' current annotations, so applying an event twice or late changes nothing. The per-frame
state lives in memory (`TaskQuality`) and is rebuilt from the current annotations the first
time a task is touched after a start. Written here: `quality_reports` (one row per job and
per task), `quality_frames` (each job's frame results) and `quality_conflicts`.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Notification
from psycopg.types.json import Jsonb

from core.annotations import LabeledData, ObjectIds
from core.errors import NotFound
from core.jobs import Job
from core.projects import Project
from core.tasks import Task
from infra.job_reads import JobReader
from infra.store import Palimpsest
from workers.quality.comparison import FrameImage
from workers.quality.objects import LabelCatalog
from workers.quality.summary import frame_json
from workers.quality.task_quality import JobInput, TaskQuality

log = structlog.get_logger(__name__)
Cursor = psycopg.Cursor[Any]

EDIT_EVENTS = (
    Job.AnnotationsCreated,
    Job.AnnotationsUpdated,
    Job.AnnotationsDeleted,
    Job.EditUndone,
    Job.EditRedone,
)
TASK_WIDE_EVENTS = (
    Task.QualitySettingsChanged,
    Task.LabelsChanged,
    Task.GroundTruthJobChanged,
    Task.DataAttached,
    Task.ValidationFramesDisabled,
    Task.HoneypotsChanged,
)
INCLUDED_TYPES = ["label", "bbox", "points", "mask", "polygon", "polyline", "skeleton", "ellipse"]
TABLES = ("quality_reports", "quality_frames", "quality_conflicts")


@dataclass
class Dirty:
    """What a block of events touched in one task."""

    whole: bool = False
    edits: dict[int, list[tuple[list[LabeledData], list[ObjectIds]]]] = field(default_factory=dict)
    jobs: set[int] = field(default_factory=set)  # reports to write again (assignee, dates)


class QualityProjection:
    name = "quality"

    def __init__(self, app: Palimpsest, jobs: JobReader) -> None:
        self._app = app
        self._jobs = jobs
        self._tasks: dict[int, TaskQuality] = {}
        self._unconfigured: set[int] = set()  # tasks seen without an accepted ground truth
        self._streams: dict[uuid.UUID, tuple[str, int, int]] = {}  # -> (kind, id, task id)

    # --- the runner's interface -----------------------------------------------------------

    def reset(self, cur: Cursor) -> None:
        for table in TABLES:
            cur.execute(f"DELETE FROM {table}")
        self._tasks.clear()
        self._unconfigured.clear()

    def apply(self, cur: Cursor, event: Any, notification: Notification) -> None:
        self.apply_all(cur, [(event, notification)])

    def apply_all(self, cur: Cursor, pairs: Sequence[tuple[Any, Notification]]) -> None:
        dirty: dict[int, Dirty] = {}
        deleted: set[int] = set()
        for event, _ in pairs:
            self._note(cur, event, dirty, deleted)
        for task_id in deleted:
            self._forget(cur, task_id)
            dirty.pop(task_id, None)
        for task_id, what in dirty.items():
            try:
                with cur.connection.transaction():
                    self._refresh(cur, task_id, what)
            except Exception:  # one bad task must not hold back every other task's reports
                log.exception("quality report not updated", task_id=task_id)
                self._tasks.pop(task_id, None)

    # --- what an event touches ------------------------------------------------------------

    def _note(self, cur: Cursor, event: Any, dirty: dict[int, Dirty], deleted: set[int]) -> None:
        if isinstance(event, Task.Deleted):
            found = self._stream(cur, event.originator_id, "task")
            if found is not None:
                deleted.add(found[2])
            return
        if isinstance(event, Project.LabelsChanged):
            cur.execute(
                "SELECT t.id FROM catalog_tasks t JOIN catalog_projects p ON p.id = t.project_id"
                " WHERE p.uuid = %s",
                (event.originator_id,),
            )
            for (task_id,) in cur.fetchall():
                dirty.setdefault(int(task_id), Dirty()).whole = True
            return
        if isinstance(event, TASK_WIDE_EVENTS):
            found = self._stream(cur, event.originator_id, "task")
            if found is not None:
                dirty.setdefault(found[2], Dirty()).whole = True
            return
        if isinstance(event, Job.Created):
            self._streams[event.originator_id] = ("job", event.job_id, event.task_id)
            dirty.setdefault(event.task_id, Dirty()).whole = True
            return
        if not isinstance(event, (Job.Updated, *EDIT_EVENTS)):
            return
        found = self._stream(cur, event.originator_id, "job")
        if found is None:
            return
        _, job_id, task_id = found
        what = dirty.setdefault(task_id, Dirty())
        if isinstance(event, Job.Updated):
            task = self._tasks.get(task_id)
            staged = "stage" in event.changes or "state" in event.changes
            if staged and (task_id in self._unconfigured or (task and job_id == task.gt_job_id)):
                what.whole = True  # the ground truth may have become (or stopped being) usable
            what.jobs.add(job_id)
            return
        written, removed = _edit_parts(event)
        what.edits.setdefault(job_id, []).append((written, removed))

    def _stream(self, cur: Cursor, stream: uuid.UUID, kind: str) -> tuple[str, int, int] | None:
        found = self._streams.get(stream)
        if found is None:
            if kind == "task":
                row = cur.execute("SELECT id, id FROM catalog_tasks WHERE uuid = %s", (stream,))
            else:
                row = cur.execute("SELECT id, task_id FROM catalog_jobs WHERE uuid = %s", (stream,))
            hit = row.fetchone()
            if hit is None:
                return None
            found = self._streams[stream] = (kind, int(hit[0]), int(hit[1]))
        return found

    # --- recomputing ----------------------------------------------------------------------

    def _refresh(self, cur: Cursor, task_id: int, what: Dirty) -> None:
        if task_id in self._unconfigured and not what.whole:
            return  # edits of a task without ground truth change no report
        task = self._load(Task, task_id)
        gt = self._gt_state(task)
        if task is None or task.data is None or gt is None:
            self._forget(cur, task_id)
            self._unconfigured.add(task_id)
            return
        self._unconfigured.discard(task_id)
        quality = self._tasks.get(task_id)
        job_ids = list(task.job_ids)
        if what.whole or quality is None:
            quality = self._rebuild(task, gt, job_ids)
            changed = {job_id: set(quality.jobs[job_id].frames) for job_id in quality.jobs}
        else:
            changed = self._update(quality, gt, what, job_ids)
        self._write(cur, task, quality, changed, what.jobs)

    def _rebuild(self, task: Task, gt: JobInput, job_ids: list[int]) -> TaskQuality:
        assert task.data is not None and gt is not None
        labels = task.labels
        if task.project_id is not None:
            project = self._load(Project, task.project_id)
            labels = project.labels if project is not None else []
        layout = task.data.validation
        disabled = set(layout.disabled_frames) if layout is not None else set()
        gt_frames = sorted(set(self._gt_frames(gt)) - disabled)
        honeypots = {}
        if layout is not None and layout.mode == "gt_pool":
            honeypots = {f: real for f, real in layout.real_frames.items() if real in gt_frames}
        quality = TaskQuality(
            task_id=task.task_id,
            gt_job_id=gt.job_id,
            gt_frames=gt_frames,
            labels=LabelCatalog.of(labels),
            settings=task.quality_settings,
            images=[FrameImage(f.width, f.height) for f in task.data.frames],
            honeypots=honeypots,
        )
        quality.set_ground_truth(gt)
        for job_id in job_ids:
            job = self._job_input(job_id)
            if job is not None:
                quality.update_job(job)
        self._tasks[task.task_id] = quality
        return quality

    def _update(
        self, quality: TaskQuality, gt: JobInput, what: Dirty, job_ids: list[int]
    ) -> dict[int, set[int]]:
        changed: dict[int, set[int]] = {}
        gt_edits = what.edits.pop(quality.gt_job_id, [])
        if gt_edits:
            frames = _frames(quality, quality.gt_job_id, gt_edits)
            quality.set_ground_truth(gt, frames)
            for job_id in job_ids:
                job = self._job_input(job_id)
                if job is not None:
                    changed[job_id] = quality.update_job(job, quality.shown_at(frames))
        for job_id, edits in what.edits.items():
            job = self._job_input(job_id)
            if job is None or job_id not in quality.jobs:
                continue
            frames = quality.update_job(job, _frames(quality, job_id, edits))
            changed[job_id] = changed.get(job_id, set()) | frames
        return changed

    def _gt_state(self, task: Task | None) -> JobInput | None:
        if task is None or task.gt_job_id is None:
            return None
        try:
            _, state = self._jobs.current_state(task.gt_job_id)
        except NotFound:
            return None
        if not (state["stage"] == "acceptance" and state["state"] == "completed"):
            return None
        return JobInput(
            task.gt_job_id, state["start_frame"], state["stop_frame"], state["annotations"]
        )

    def _gt_frames(self, gt: JobInput) -> list[int]:
        _, state = self._jobs.current_state(gt.job_id)
        frames = state.get("validation_frames")
        return list(frames) if frames else list(range(gt.start_frame, gt.stop_frame + 1))

    def _job_input(self, job_id: int) -> JobInput | None:
        try:
            _, state = self._jobs.current_state(job_id)
        except NotFound:
            return None
        return JobInput(job_id, state["start_frame"], state["stop_frame"], state["annotations"])

    def _load(self, kind: type[Any], key: int) -> Any:
        try:
            found = self._app.repository.get(kind.stream_id(key))
        except AggregateNotFoundError:
            return None
        return None if found.deleted else found

    # --- writing --------------------------------------------------------------------------

    def _forget(self, cur: Cursor, task_id: int) -> None:
        self._tasks.pop(task_id, None)
        cur.execute(
            "DELETE FROM quality_frames WHERE job_id IN"
            " (SELECT job_id FROM quality_reports WHERE task_id = %s AND job_id IS NOT NULL)",
            (task_id,),
        )
        cur.execute("DELETE FROM quality_conflicts WHERE task_id = %s", (task_id,))
        cur.execute("DELETE FROM quality_reports WHERE task_id = %s", (task_id,))

    def _write(
        self,
        cur: Cursor,
        task: Task,
        quality: TaskQuality,
        changed: dict[int, set[int]],
        touched_jobs: set[int],
    ) -> None:
        assert task.data is not None
        docs = _job_docs(cur, task.task_id)
        ids = _report_ids(cur, task.task_id)
        stale = [job_id for job_id in ids if job_id and job_id not in quality.jobs]
        if stale:
            cur.execute("DELETE FROM quality_frames WHERE job_id = ANY(%s)", (stale,))
            cur.execute("DELETE FROM quality_conflicts WHERE job_id = ANY(%s)", (stale,))
            cur.execute(
                "DELETE FROM quality_reports WHERE task_id = %s AND job_id = ANY(%s)",
                (task.task_id, stale),
            )
        task_report = ids.get(0) or _next_report_id(cur)
        parameters = _parameters(quality)
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        gt_doc = docs.get(quality.gt_job_id, {})
        for job_id, frames in changed.items():
            report_id = ids.get(job_id) or _next_report_id(cur)
            ids[job_id] = report_id
            self._write_frames(cur, task.task_id, quality, job_id, report_id, frames)
        for job_id in set(changed) | (touched_jobs & set(quality.jobs)):
            job = quality.jobs[job_id]
            totals = quality.job_totals(job_id)
            job_doc = docs.get(job_id, {})
            report_id = ids.get(job_id) or _next_report_id(cur)
            summary = totals.report_summary(job.stop_frame - job.start_frame + 1)
            doc = {
                "id": report_id,
                "job_id": job_id,
                "task_id": task.task_id,
                "project_id": task.project_id,
                "parent_id": task_report,
                "target": "job",
                "summary": summary,
                "created_date": stamp,
                "target_last_updated": job_doc.get("updated_date"),
                "gt_last_updated": gt_doc.get("updated_date"),
                "assignee": job_doc.get("assignee"),
            }
            comparison = totals.comparison_summary(job.stop_frame - job.start_frame + 1)
            _upsert_report(cur, report_id, "job", task.task_id, job_id, parameters, comparison, doc)
        totals = quality.task_totals()
        doc = {
            "id": task_report,
            "job_id": None,
            "task_id": task.task_id,
            "project_id": task.project_id,
            "parent_id": None,
            "target": "task",
            "summary": {**totals.report_summary(task.data.size), "jobs": len(quality.jobs)},
            "created_date": stamp,
            "target_last_updated": stamp,
            "gt_last_updated": gt_doc.get("updated_date"),
            "assignee": None,
        }
        comparison = totals.comparison_summary(task.data.size)
        _upsert_report(cur, task_report, "task", task.task_id, None, parameters, comparison, doc)

    def _write_frames(
        self,
        cur: Cursor,
        task_id: int,
        quality: TaskQuality,
        job_id: int,
        report_id: int,
        frames: set[int],
    ) -> None:
        if not frames:
            return
        job = quality.jobs[job_id]
        ordered = sorted(frames)
        cur.execute(
            "DELETE FROM quality_frames WHERE job_id = %s AND frame = ANY(%s)", (job_id, ordered)
        )
        cur.execute(
            "DELETE FROM quality_conflicts WHERE job_id = %s AND frame = ANY(%s)",
            (job_id, ordered),
        )
        names = quality.label_names
        encoder = msgspec.json.Encoder()
        frame_rows = io.BytesIO()
        conflicts: list[tuple[int, dict[str, object]]] = []
        for frame in ordered:
            result = job.results[frame]
            frame_rows.write(b"%d\t%d\t" % (job_id, frame))
            frame_rows.write(_copy_text(encoder.encode(frame_json(result, names))))
            frame_rows.write(b"\n")
            conflicts += [(frame, c) for c in result.conflicts]
        with cur.copy("COPY quality_frames (job_id, frame, doc) FROM STDIN") as copy:
            copy.write(frame_rows.getvalue())
        if not conflicts:
            return
        cur.execute(
            "SELECT nextval('palimpsest_quality_conflict_id') FROM generate_series(1, %s)",
            (len(conflicts),),
        )
        conflict_ids = [row[0] for row in cur.fetchall()]
        rows = io.BytesIO()
        for ident, (frame, conflict) in zip(conflict_ids, conflicts, strict=True):
            doc = {
                "id": ident,
                "frame": frame,
                "type": conflict["type"],
                "annotation_ids": conflict["annotation_ids"],
                "report_id": report_id,
                "severity": conflict["severity"],
            }
            rows.write(b"%d\t%d\t%d\t%d\t" % (ident, task_id, job_id, frame))
            rows.write(_copy_text(encoder.encode(doc)))
            rows.write(b"\n")
        with cur.copy(
            "COPY quality_conflicts (id, task_id, job_id, frame, doc) FROM STDIN"
        ) as copy:
            copy.write(rows.getvalue())


def _copy_text(data: bytes) -> bytes:
    """JSON as a COPY text field: backslashes doubled (JSON has no raw tabs or newlines)."""
    return data.replace(b"\\", b"\\\\")


def _edit_parts(event: Any) -> tuple[list[LabeledData], list[ObjectIds]]:
    if isinstance(event, Job.AnnotationsDeleted):
        return [], [event.ids]
    if isinstance(event, (Job.EditUndone, Job.EditRedone)):
        return [event.restore], [event.remove]
    return [event.data], []


def _frames(
    quality: TaskQuality,
    job_id: int,
    edits: list[tuple[list[LabeledData], list[ObjectIds]]],
) -> set[int]:
    written = [data for parts, _ in edits for data in parts]
    removed = [ids for _, parts in edits for ids in parts]
    return quality.frames_of_edit(job_id, written, removed)


def _job_docs(cur: Cursor, task_id: int) -> dict[int, dict[str, Any]]:
    cur.execute("SELECT id, doc FROM catalog_jobs WHERE task_id = %s", (task_id,))
    return {int(row[0]): row[1] for row in cur.fetchall()}


def _report_ids(cur: Cursor, task_id: int) -> dict[int, int]:
    """Report ids of the task's reports by job id (0: the task report)."""
    cur.execute(
        "SELECT coalesce(job_id, 0), id FROM quality_reports WHERE task_id = %s", (task_id,)
    )
    return {int(row[0]): int(row[1]) for row in cur.fetchall()}


def _next_report_id(cur: Cursor) -> int:
    row = cur.execute("SELECT nextval('palimpsest_quality_report_id')").fetchone()
    assert row is not None
    return int(row[0])


def _upsert_report(
    cur: Cursor,
    report_id: int,
    target: str,
    task_id: int,
    job_id: int | None,
    parameters: dict[str, object],
    comparison: dict[str, object],
    doc: dict[str, object],
) -> None:
    cur.execute(
        "INSERT INTO quality_reports (id, target, task_id, job_id, parameters, comparison, doc)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
        " parameters = EXCLUDED.parameters, comparison = EXCLUDED.comparison, doc = EXCLUDED.doc",
        (report_id, target, task_id, job_id, Jsonb(parameters), Jsonb(comparison), Jsonb(doc)),
    )


def _parameters(quality: TaskQuality) -> dict[str, object]:
    return {
        "included_annotation_types": INCLUDED_TYPES,
        "ignored_attributes": [],
        **msgspec.to_builtins(quality.settings),
    }
