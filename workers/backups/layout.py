"""CVAT's backup archive (version 1.0): what its JSON files hold and where things lie.

A task backup is ``task.json`` (the task, its labels, data settings and jobs),
``annotations.json`` (one CVAT annotations body per job, in job order, labels and
attributes by name) and ``data/`` (the media files and their ``manifest.jsonl``). A project
backup is ``project.json`` and one such task folder per task with data, ``task_0/``,
``task_1/``, ... in task id order.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from core.jobs import Stage, State
from core.labels import LabelInput, LabelSpec, svg_with_node_names

VERSION = "1.0"
TASK_FILE = "task.json"
ANNOTATIONS_FILE = "annotations.json"
PROJECT_FILE = "project.json"
DATA_DIR = "data"
TASK_DIR_PREFIX = "task_"


class BackupValidationLayout(msgspec.Struct):
    """task.json's ``data.validation_layout`` (CVAT writes it for a honeypot task only):
    the pool's files and the honeypots per job; where each honeypot lies is in the jobs'
    ``files``."""

    mode: Literal["gt", "gt_pool"]
    frames: list[str] = []
    frames_per_job_count: int | None = None
    frame_selection_method: str = "manual"


class BackupData(msgspec.Struct):
    """task.json's ``data``: how the media was made. Frame range fields are left out when
    the archive carries only the task's frames (image tasks)."""

    image_quality: int = 70
    chunk_size: int | None = None
    start_frame: int = 0
    stop_frame: int | None = None
    frame_filter: str = ""
    chunk_type: str = "imageset"
    storage_method: str = "file_system"
    storage: str = "local"
    sorting_method: str = "lexicographical"
    deleted_frames: list[int] = []
    custom_segments: bool = False
    validation_layout: BackupValidationLayout | None = None
    job_file_mapping: list[list[str]] | None = None
    cloud_storage_id: int | None = None


class BackupJob(msgspec.Struct):
    """One job of task.json's ``jobs``. CVAT writes ``status`` and ``type``; ``stage`` and
    ``state`` are written too (CVAT ignores them) so a round trip keeps them."""

    start_frame: int
    stop_frame: int
    status: str = "annotation"
    # consensus replicas (CVAT 2.2x+) are read only to be left out: there is no consensus here
    type: Literal["annotation", "ground_truth", "consensus_replica"] = "annotation"
    frames: list[int] | None = None  # a ground truth job's frames
    files: list[str] | None = None  # its frames' files (custom segments, honeypot tasks)
    stage: Stage | None = None
    state: State | None = None


class BackupTask(msgspec.Struct):
    name: str
    version: str
    data: BackupData
    jobs: list[BackupJob]
    labels: list[LabelInput] = []
    bug_tracker: str = ""
    status: str = "annotation"
    subset: str = ""


class BackupProject(msgspec.Struct):
    name: str
    version: str
    labels: list[LabelInput] = []
    bug_tracker: str = ""
    status: str = "annotation"


def label_json(label: LabelSpec) -> dict[str, Any]:
    """A label as backups write it: no ids, skeleton nodes named in the svg."""
    return {
        "name": label.name,
        "color": label.color,
        "attributes": [
            {
                "name": spec.name,
                "mutable": spec.mutable,
                "input_type": spec.input_type,
                "default_value": spec.default_value,
                "values": spec.values,
            }
            for spec in label.attributes
        ],
        "type": label.type,
        "svg": svg_with_node_names(label.svg, label.sublabels),
        "sublabels": [label_json(sub) for sub in label.sublabels],
    }


def task_dir(position: int) -> str:
    """The folder of a project backup's task at ``position`` (tasks with data, by id)."""
    return f"{TASK_DIR_PREFIX}{position}/"


def stage_and_state(job: BackupJob) -> tuple[str, str]:
    """The job's workflow place: as written, or (archives made by CVAT) from its status."""
    if job.stage is not None and job.state is not None:
        return job.stage, job.state
    if job.status == "completed":
        return "acceptance", "completed"
    if job.status == "validation":
        return "validation", "new"
    return "annotation", "new"
