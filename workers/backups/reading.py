"""Reading an uploaded backup, which is hostile until checked.

The whole ZIP is vetted first by the checks every uploaded archive gets
(workers/formats/archives.py: zip slip, archive bombs, size caps); its JSON files are read
with the same caps and decoded into typed structures, each fault named by its place. Media
members are written out only later, one by one, by the media extractor's safe writer.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from core.cloud_storages import is_safe_key
from workers.backups.layout import (
    ANNOTATIONS_FILE,
    DATA_DIR,
    PROJECT_FILE,
    TASK_DIR_PREFIX,
    TASK_FILE,
    VERSION,
    BackupProject,
    BackupTask,
)
from workers.formats.archives import list_member_names, read_annotation_files
from workers.formats.dataset import FormatError
from workers.images import MediaError
from workers.media.archives import write_member
from workers.media.manifest import INDEX_FILE, MANIFEST_FILE, parse_manifest

T = TypeVar("T")
_TASK_FOLDER = re.compile(rf"^({re.escape(TASK_DIR_PREFIX)}(\d+)/)")


@dataclass(frozen=True)
class TaskArchive:
    """One task of a backup, its JSON read and typed; its media still in the archive."""

    folder: str  # "" for a task backup, "task_N/" inside a project backup
    meta: BackupTask
    annotations: list[Any]  # one annotations body per job, names not yet checked
    media: list[str]  # member names under the task's data/ folder, in archive order
    cloud_files: list[str]  # a lightweight backup's: the object keys its manifest lists


@dataclass(frozen=True)
class ProjectArchive:
    meta: BackupProject
    tasks: list[TaskArchive]


def read_task_archive(path: Path) -> TaskArchive:
    members = _members(path)
    files = _json_files(path, {TASK_FILE, ANNOTATIONS_FILE, f"{DATA_DIR}/{MANIFEST_FILE}"})
    return _task(files, members, "")


def read_project_archive(path: Path) -> ProjectArchive:
    members = _members(path)
    numbered = {m.group(1): int(m.group(2)) for m in map(_TASK_FOLDER.match, members) if m}
    folders = sorted(numbered.items(), key=lambda item: item[1])
    wanted = {PROJECT_FILE} | {
        f"{folder}{name}"
        for folder, _ in folders
        for name in (TASK_FILE, ANNOTATIONS_FILE, f"{DATA_DIR}/{MANIFEST_FILE}")
    }
    files = _json_files(path, wanted)
    meta = _decode(_required(files, PROJECT_FILE), BackupProject, PROJECT_FILE)
    _check_version(meta.version, PROJECT_FILE)
    return ProjectArchive(meta, [_task(files, members, folder) for folder, _ in folders])


def _task(files: dict[str, bytes], members: list[str], folder: str) -> TaskArchive:
    meta = _decode(_required(files, folder + TASK_FILE), BackupTask, folder + TASK_FILE)
    _check_version(meta.version, folder + TASK_FILE)
    name = folder + ANNOTATIONS_FILE
    annotations = _decode(_required(files, name), list[Any], name)
    if len(annotations) != len(meta.jobs):
        raise FormatError(
            f"{name} holds {len(annotations)} job(s) but {folder}{TASK_FILE} lists {len(meta.jobs)}"
        )
    meta, annotations = _without_replicas(meta, annotations)
    prefix = f"{folder}{DATA_DIR}/"
    media = [m for m in members if m.startswith(prefix) and m != prefix + INDEX_FILE]
    if len(set(media)) != len(media):
        raise FormatError(f"{prefix} holds a file twice")
    cloud_files = []
    if meta.data.storage == "cloud_storage":
        cloud_files = _cloud_files(files, prefix, media)
    elif not media:
        raise FormatError(f"{prefix} holds no media files")
    return TaskArchive(folder, meta, annotations, media, cloud_files)


def _without_replicas(meta: BackupTask, annotations: list[Any]) -> tuple[BackupTask, list[Any]]:
    """The task's jobs and their annotations, consensus replica jobs (each beside the job
    it copies, in CVAT's archives) left out."""
    kept = [i for i, job in enumerate(meta.jobs) if job.type != "consensus_replica"]
    jobs = [meta.jobs[i] for i in kept]
    return msgspec.structs.replace(meta, jobs=jobs), [annotations[i] for i in kept]


def _cloud_files(files: dict[str, bytes], prefix: str, media: list[str]) -> list[str]:
    """The bucket keys of a lightweight backup's media: what its manifest, the only file
    it carries, lists."""
    name = prefix + MANIFEST_FILE
    if media != [name]:
        raise FormatError(f"a backup whose media is in a cloud storage carries only {name}")
    try:
        listed = parse_manifest(_required(files, name)).file_names()
    except MediaError as error:
        raise FormatError(f"{name}: {error}") from None
    if not listed:
        raise FormatError(f"{name} lists no files")
    unsafe = [key for key in listed if not is_safe_key(key)]
    if unsafe:
        raise FormatError(f"{name} names {unsafe[0]!r}, which is not a usable object key")
    return listed


def media_names(task: TaskArchive) -> list[str]:
    """The task's media files by their paths below data/ (the names its frames get)."""
    prefix = f"{task.folder}{DATA_DIR}/"
    return [member.removeprefix(prefix) for member in task.media]


def extract_task_media(path: Path, task: TaskArchive, target: Path) -> list[str]:
    """Writes the task's media files under ``target`` at their paths below data/; their
    names there, in archive order."""
    prefix = f"{task.folder}{DATA_DIR}/"
    names = []
    try:
        with zipfile.ZipFile(path) as archive:
            for member in task.media:
                info = archive.getinfo(member)
                relative = member.removeprefix(prefix)
                with archive.open(info) as stream:
                    write_member(stream, target, relative, info.file_size)
                names.append(relative)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise MediaError(f"the backup cannot be read: {error}") from None
    return names


def _members(path: Path) -> list[str]:
    if not zipfile.is_zipfile(path):
        raise FormatError("a backup is a ZIP archive")
    return list_member_names(path)


def _json_files(path: Path, wanted: set[str]) -> dict[str, bytes]:
    return dict(read_annotation_files(path, (".json", ".jsonl"), member_filter=wanted.__contains__))


def _required(files: dict[str, bytes], name: str) -> bytes:
    if name not in files:
        raise FormatError(f"the backup has no {name}")
    return files[name]


def _decode(raw: bytes, kind: type[T], name: str) -> T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as error:
        raise FormatError(f"{name}: {error}") from None
    except msgspec.DecodeError as error:
        raise FormatError(f"{name} is not JSON: {error}") from None


def _check_version(version: str, name: str) -> None:
    if version != VERSION:
        raise FormatError(f"{name}: backup version {version!r} is not supported (only {VERSION})")
