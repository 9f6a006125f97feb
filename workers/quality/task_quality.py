"""A task's quality, kept current frame by frame: the ground truth's objects, every annotation
job's frame results, and which frames each object lay on (to know what an edit touches).

No I/O: the caller hands in job states; `projections/quality.py` feeds it from the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.annotations import AnnotationState, LabeledData, ObjectIds
from core.quality_settings import QualitySettings
from workers.quality.comparison import FrameImage, FrameResult, compare_frame
from workers.quality.objects import Ann, LabelCatalog, objects_by_frame
from workers.quality.summary import Totals

ALL = None  # "every frame" where a set of frames is expected


@dataclass(frozen=True)
class JobInput:
    job_id: int
    start_frame: int
    stop_frame: int
    state: AnnotationState


@dataclass
class JobQuality:
    job_id: int
    start_frame: int
    stop_frame: int
    frames: list[int]  # ground truth frames inside the job
    totals: Totals
    results: dict[int, FrameResult] = field(default_factory=dict)
    objects: dict[int, set[int]] = field(default_factory=dict)  # object id -> frames

    def record(self, frame: int, result: FrameResult) -> None:
        old = self.results.get(frame)
        if old is not None:
            self.totals.remove_frame(frame, old)
        self.results[frame] = result
        self.totals.add_frame(frame, result)


@dataclass
class TaskQuality:
    task_id: int
    gt_job_id: int
    gt_frames: list[int]
    labels: LabelCatalog
    settings: QualitySettings
    images: list[FrameImage]
    gt_objects: dict[int, list[Ann]] = field(default_factory=dict)
    gt_index: dict[int, set[int]] = field(default_factory=dict)
    jobs: dict[int, JobQuality] = field(default_factory=dict)
    # honeypot frame of an annotation job -> the ground truth (pool) frame it shows
    honeypots: dict[int, int] = field(default_factory=dict)

    @property
    def compared_frames(self) -> set[int]:
        """Frames of annotation jobs compared with the ground truth: its own frames (in a
        job's range when the ground truth job picks task frames) and the honeypots."""
        return set(self.gt_frames) | set(self.honeypots)

    def shown_at(self, gt_frames: set[int]) -> set[int]:
        """Where ground truth frames `gt_frames` are compared: themselves and every honeypot
        showing one of them."""
        return gt_frames | {f for f, real in self.honeypots.items() if real in gt_frames}

    @property
    def label_names(self) -> list[str]:
        return [name for _, name in self.labels.top_level]

    def set_ground_truth(self, gt: JobInput, frames: set[int] | None = ALL) -> set[int]:
        """Reads the ground truth objects on `frames` (all when None); returns those frames."""
        wanted = set(self.gt_frames) if frames is None else frames & set(self.gt_frames)
        found = objects_by_frame(gt.state, wanted, gt.stop_frame, self.labels)
        for frame, anns in found.items():
            self.gt_objects[frame] = anns
        _reindex(self.gt_index, found)
        return wanted

    def update_job(self, job: JobInput, frames: set[int] | None = ALL) -> set[int]:
        """Compares `frames` (all of the job's ground truth frames when None) again; returns
        the frames compared."""
        quality = self.jobs.get(job.job_id)
        if quality is None or frames is None:
            in_job = sorted(
                f for f in self.compared_frames if job.start_frame <= f <= job.stop_frame
            )
            quality = self.jobs[job.job_id] = JobQuality(
                job.job_id, job.start_frame, job.stop_frame, in_job, Totals(self.label_names)
            )
            wanted = set(quality.frames)
        else:
            wanted = frames & set(quality.frames)
        found = objects_by_frame(job.state, wanted, job.stop_frame, self.labels)
        _reindex(quality.objects, found)
        for frame in wanted:
            result = compare_frame(
                self.gt_objects.get(self.honeypots.get(frame, frame), []),
                found[frame],
                frame=frame,
                gt_job=self.gt_job_id,
                ds_job=job.job_id,
                settings=self.settings,
                labels=self.labels,
                image=self.images[frame],
            )
            quality.record(frame, result)
        return wanted

    def frames_of_edit(
        self, job_id: int, written: Iterable[LabeledData], removed: Iterable[ObjectIds]
    ) -> set[int]:
        """Compared frames an edit of job `job_id` may have changed (for the ground truth job,
        its own frames): where the written objects are now, where every touched object was
        before, and for tracks every frame from their first keyframe on."""
        is_gt = job_id == self.gt_job_id
        index = self.gt_index if is_gt else self._job_index(job_id)
        compared = set(self.gt_frames) if is_gt else self.compared_frames
        frames: set[int] = set()
        for data in written:
            frames.update(t.frame for t in data.tags)
            frames.update(s.frame for s in data.shapes)
            for track in data.tracks:
                first = min((s.frame for s in track.shapes), default=track.frame)
                frames.update(f for f in compared if f >= first)
            for obj in (*data.tags, *data.shapes, *data.tracks):
                frames |= index.get(obj.id or 0, set())
        for ids in removed:
            for ident in (*ids.tags, *ids.shapes, *ids.tracks):
                frames |= index.get(ident, set())
        return frames & compared

    def _job_index(self, job_id: int) -> dict[int, set[int]]:
        quality = self.jobs.get(job_id)
        return quality.objects if quality is not None else {}

    def drop_job(self, job_id: int) -> None:
        self.jobs.pop(job_id, None)

    def job_totals(self, job_id: int) -> Totals:
        return self.jobs[job_id].totals

    def task_totals(self) -> Totals:
        totals = Totals(self.label_names)
        for job_id in sorted(self.jobs):
            totals.add_totals(self.job_totals(job_id))
        return totals


def _reindex(index: dict[int, set[int]], found: dict[int, list[Ann]]) -> None:
    """Forgets the recompared frames for every object, then records where each object is."""
    frames = set(found)
    for ident in list(index):
        index[ident] -= frames
        if not index[ident]:
            del index[ident]
    for frame, anns in found.items():
        for ann in anns:
            index.setdefault(ann.id, set()).add(frame)
