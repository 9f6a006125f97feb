"""Jobs: a task's frame range given to one annotation workflow (stage, state, assignee)."""

from __future__ import annotations

from typing import Literal

import msgspec

from core.aggregate import Entity
from core.annotations import AnnotationState, LabeledData, ObjectIds
from core.review import CommentRef, Issue, ReviewState
from core.storage import apply_changes
from core.undo_book import UndoBook, move_step, record_change

Stage = Literal["annotation", "validation", "acceptance"]
State = Literal["new", "in progress", "completed", "rejected"]
UNSET = msgspec.UNSET


class Job(Entity):
    KIND = "job"
    # Defaults for snapshots taken before these fields existed.
    review: ReviewState = ReviewState()
    annotator_id: int | None = None
    validation_frames: list[int] | None = None
    validation_attempts: tuple[int | None, ...] = ()  # the assignee of each feedback given

    class Created(Entity.Created):
        job_id: int
        task_id: int
        start_frame: int
        stop_frame: int
        job_type: str
        frames: list[int] | None = None  # a ground truth job's frames (task-relative)

    def __init__(
        self,
        job_id: int,
        task_id: int,
        start_frame: int,
        stop_frame: int,
        job_type: str,
        frames: list[int] | None = None,
    ) -> None:
        self.job_id = job_id
        self.task_id = task_id
        self.start_frame = start_frame
        self.stop_frame = stop_frame
        self.job_type = job_type
        self.validation_frames = frames
        self.assignee_id: int | None = None
        self.stage = "annotation"
        self.state = "new"
        self.annotations = AnnotationState()
        self.undo_book = UndoBook()
        self.review = ReviewState()
        self.annotator_id: int | None = None  # the assignee while the job was last annotated

    class Updated(Entity.Event):
        changes: dict[str, object]

        def apply(self, job: Job) -> None:
            apply_changes(job, self.changes)
            if job.stage == "annotation" and job.assignee_id is not None:
                job.annotator_id = job.assignee_id

    class ValidationGiven(Entity.Event):
        """Immediate feedback on a finished job: its score against the ground truth."""

        assignee_id: int | None
        target_metric: str
        score: float
        passed: bool
        frames_to_fix: list[int]

        def apply(self, job: Job) -> None:
            job.validation_attempts = (*job.validation_attempts, self.assignee_id)

    class IssueOpened(Entity.Event):
        issue: Issue
        comment_id: int
        message: str

        def apply(self, job: Job) -> None:
            job.review = job.review.with_issue(self.issue).with_comment(
                self.comment_id, CommentRef(self.issue.id, self.issue.owner_id)
            )

    class IssueChanged(Entity.Event):
        issue_id: int
        changes: dict[str, object]

        def apply(self, job: Job) -> None:
            issue = msgspec.structs.replace(job.review.issues[self.issue_id], **self.changes)
            job.review = job.review.with_issue(issue)

    class IssueRemoved(Entity.Event):
        issue_id: int

        def apply(self, job: Job) -> None:
            job.review = job.review.without_issue(self.issue_id)

    class CommentAdded(Entity.Event):
        comment_id: int
        issue_id: int
        message: str

        def apply(self, job: Job) -> None:
            job.review = job.review.with_comment(
                self.comment_id, CommentRef(self.issue_id, self.actor)
            )

    class CommentEdited(Entity.Event):
        comment_id: int
        message: str

        def apply(self, job: Job) -> None:
            pass  # the message lives in the catalog; the state keeps only who wrote it

    class CommentRemoved(Entity.Event):
        comment_id: int

        def apply(self, job: Job) -> None:
            job.review = job.review.without_comment(self.comment_id)

    class AnnotationsCreated(Entity.Event):
        data: LabeledData

        def apply(self, job: Job) -> None:
            job.record_step(written=self.data, event=self)
            job.annotations = job.annotations.with_objects(
                self.data, self.originator_version, self.actor
            )

    class AnnotationsUpdated(Entity.Event):
        data: LabeledData

        def apply(self, job: Job) -> None:
            job.record_step(written=self.data, event=self)
            job.annotations = job.annotations.with_objects(
                self.data, self.originator_version, self.actor
            )

    class AnnotationsDeleted(Entity.Event):
        ids: ObjectIds

        def apply(self, job: Job) -> None:
            job.record_step(removed=self.ids, event=self)
            job.annotations = job.annotations.without(self.ids)

    class EditUndone(Entity.Event):
        """The actor's last step, reversed: `remove` what it made, `restore` what it changed."""

        step: str
        remove: ObjectIds
        restore: LabeledData
        refused: list[int]

        def apply(self, job: Job) -> None:
            job.annotations = job.annotations.without(self.remove).with_objects(
                self.restore, self.originator_version, self.actor
            )
            job.undo_book = move_step(job.undo_book, self.actor, undoing=True)  # type: ignore[arg-type]

    class EditRedone(Entity.Event):
        step: str
        remove: ObjectIds
        restore: LabeledData
        refused: list[int]

        def apply(self, job: Job) -> None:
            job.annotations = job.annotations.without(self.remove).with_objects(
                self.restore, self.originator_version, self.actor
            )
            job.undo_book = move_step(job.undo_book, self.actor, undoing=False)  # type: ignore[arg-type]

    def record_step(
        self,
        *,
        event: Entity.Event,
        written: LabeledData | None = None,
        removed: ObjectIds | None = None,
    ) -> None:
        self.undo_book = record_change(
            self.undo_book,
            self.annotations,
            actor=event.actor,
            cid=event.command_id,
            version=event.originator_version,
            written=written,
            removed=removed,
        )

    @property
    def frames(self) -> range | list[int]:
        if self.validation_frames is not None:
            return self.validation_frames
        return range(self.start_frame, self.stop_frame + 1)

    @property
    def is_configured_ground_truth(self) -> bool:
        """The manual's rule: ground truth counts once accepted (acceptance + completed)."""
        return (
            self.job_type == "ground_truth"
            and self.stage == "acceptance"
            and self.state == "completed"
        )

    @property
    def status(self) -> str:
        return job_status(self.stage, self.state)


def job_status(stage: str, state: str) -> str:
    if stage == "annotation":
        return "annotation"
    if stage == "acceptance" and state == "completed":
        return "completed"
    return "validation"
