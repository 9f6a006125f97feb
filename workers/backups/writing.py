"""Writing task and project backups (CVAT's layout, see layout.py) from what the read side
gathered: the task's documents, its jobs' annotations and its media folder.

Images are written under their frame names (the files as uploaded, context images under
``related_images/`` beside them), a video as the file uploaded; the task's
``manifest.jsonl`` lists them in task order, which an import follows.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from core.jobs import job_status
from core.labels import LabelSpec
from workers.backups.layout import (
    ANNOTATIONS_FILE,
    DATA_DIR,
    PROJECT_FILE,
    TASK_FILE,
    VERSION,
    label_json,
    task_dir,
)
from workers.backups.named_annotations import named
from workers.backups.pool import is_pool_task, job_files, pool_layout_json
from workers.formats.archives import safe_archive_name
from workers.media.context_images import context_dir, context_folder
from workers.media.library import original_path, stored_frame, video_source
from workers.media.manifest import MANIFEST_FILE


@dataclass(frozen=True)
class JobContent:
    """One job of the task as a backup lists it."""

    job: dict[str, Any]  # task.json's entry
    annotations: dict[str, Any]  # annotations.json's entry (names, no ids)


@dataclass(frozen=True)
class TaskContent:
    task: dict[str, Any]  # the task's catalog document
    data: dict[str, Any]  # its data as recorded (TaskData)
    labels: list[LabelSpec]
    jobs: list[JobContent]
    media_dir: Path
    lightweight: bool = False  # the media left in the cloud storage it came from


def job_content(job: dict[str, Any], labels: list[LabelSpec], data: dict[str, Any]) -> JobContent:
    """A job's entry from its current state (the job aggregate's attributes); in a honeypot
    task with its frames' files, which place every frame (CVAT's)."""
    entry: dict[str, Any] = {
        "status": job_status(job["stage"], job["state"]),
        "type": job["job_type"],
        "stage": job["stage"],
        "state": job["state"],
        "start_frame": job["start_frame"],
        "stop_frame": job["stop_frame"],
    }
    frames = list(range(job["start_frame"], job["stop_frame"] + 1))
    if job["job_type"] == "ground_truth":
        frames = list(job.get("validation_frames") or frames)
        entry["frames"] = frames
    if is_pool_task(data):
        entry["files"] = job_files(data, frames)
    return JobContent(entry, named(job["annotations"].as_data(0), labels))


def write_task_backup(target: Path, content: TaskContent) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        _write_task(out, "", content)


def write_project_backup(
    target: Path, project: dict[str, Any], labels: list[LabelSpec], tasks: list[TaskContent]
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": project["name"],
        "bug_tracker": project.get("bug_tracker") or "",
        "status": project.get("status") or "annotation",
        "labels": [label_json(label) for label in labels],
        "version": VERSION,
    }
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        out.writestr(PROJECT_FILE, msgspec.json.encode(meta))
        for position, task in enumerate(tasks):
            _write_task(out, task_dir(position), task)


def task_json(content: TaskContent) -> dict[str, Any]:
    task = content.task
    return {
        "name": task["name"],
        "bug_tracker": task.get("bug_tracker") or "",
        "status": task.get("status") or "annotation",
        "subset": task.get("subset") or "",
        "labels": [label_json(label) for label in content.labels],
        "version": VERSION,
        "data": data_json(content.data, content.lightweight),
        "jobs": [job.job for job in content.jobs],
    }


def data_json(data: dict[str, Any], lightweight: bool) -> dict[str, Any]:
    """task.json's ``data``. An image task's archive holds just its frames, so the frame
    range is left out (as CVAT does when it writes a filtered manifest); a video's stays."""
    meta: dict[str, Any] = {
        "chunk_size": data["chunk_size"],
        "image_quality": data["image_quality"],
    }
    if is_video(data):
        meta["start_frame"] = data["start_frame"]
        meta["stop_frame"] = data["stop_frame"]
        if data.get("frame_filter"):
            meta["frame_filter"] = data["frame_filter"]
    meta.update(
        {
            "chunk_type": data.get("chunk_type") or "imageset",
            "storage_method": "cache" if data.get("use_cache") else data["storage_method"],
            "storage": "cloud_storage" if lightweight else "local",
            "sorting_method": data["sorting_method"],
            "deleted_frames": data.get("deleted_frames") or [],
        }
    )
    if lightweight:
        meta["cloud_storage_id"] = data["cloud_storage_id"]
    if is_pool_task(data):
        meta["custom_segments"] = True  # the jobs' files place the frames
        meta["validation_layout"] = pool_layout_json(data)
    return meta


def is_video(data: dict[str, Any]) -> bool:
    return data.get("video") is not None


def _write_task(out: zipfile.ZipFile, folder: str, content: TaskContent) -> None:
    data_folder = f"{folder}{DATA_DIR}/"
    if not content.lightweight:
        _write_media(out, data_folder, content.media_dir, content.data)
    manifest = content.media_dir / MANIFEST_FILE
    if manifest.exists():
        out.write(manifest, data_folder + MANIFEST_FILE)
    out.writestr(folder + TASK_FILE, msgspec.json.encode(task_json(content)))
    annotations = [job.annotations for job in content.jobs]
    out.writestr(folder + ANNOTATIONS_FILE, msgspec.json.encode(annotations))


def _write_media(out: zipfile.ZipFile, folder: str, media_dir: Path, data: dict[str, Any]) -> None:
    """The media files as uploaded; stored, not deflated (images and videos hardly shrink)."""
    stored = zipfile.ZIP_STORED
    if is_video(data):
        source = video_source(media_dir, data)
        out.write(source, folder + safe_archive_name(source.name), stored)
        return
    written = set()
    for number, frame in enumerate(data["frames"]):
        image = stored_frame(data, number)
        if image in written:  # a honeypot: its pool frame's image is written once
            continue
        written.add(image)
        name = safe_archive_name(frame["name"])
        out.write(original_path(media_dir, image, frame["name"]), folder + name, stored)
        if frame.get("related_files"):
            for path in sorted(context_dir(media_dir, image).iterdir()):
                out.write(path, f"{folder}{context_folder(name)}/{path.name}", stored)
