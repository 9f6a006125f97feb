"""A task's media as recorded when its data is attached: frames in task order and settings."""

from __future__ import annotations

from typing import Literal

import msgspec

from core.cloud_storages import is_safe_key
from core.errors import ErrorCollector

SortingMethod = Literal["lexicographical", "natural", "predefined", "random"]


class FrameMeta(msgspec.Struct):
    name: str
    width: int
    height: int
    related_files: int = 0  # context images


class VideoSource(msgspec.Struct):
    """The uploaded video of a video task: its frame count before start/stop/step."""

    frame_count: int


class TaskData(msgspec.Struct):
    data_id: int
    image_quality: int
    chunk_size: int
    size: int
    start_frame: int
    stop_frame: int
    frame_filter: str
    sorting_method: str
    frames: list[FrameMeta]
    random_seed: int | None = None
    storage: str = "local"
    storage_method: str = "file_system"
    use_zip_chunks: bool = True
    deleted_frames: list[int] = []
    media_type: str = "image"
    mode: str = "annotation"
    chunk_type: str = "imageset"  # of compressed chunks
    original_chunk_type: str | None = None  # None: the same as chunk_type
    use_cache: bool = False
    video: VideoSource | None = None
    cloud_storage_id: int | None = None  # where the files were taken from


class DataRequest(msgspec.Struct):
    """The data parameters of CVAT's POST /api/tasks/{id}/data (Upload-Finish or one-shot)."""

    image_quality: int = 70
    chunk_size: int | None = None
    start_frame: int = 0
    stop_frame: int | None = None
    frame_filter: str = ""
    sorting_method: SortingMethod = "lexicographical"
    upload_file_order: list[str] = []
    use_zip_chunks: bool = False
    use_cache: bool = False
    copy_data: bool = False
    storage_method: Literal["cache", "file_system"] = "file_system"
    storage: Literal["local", "share", "cloud_storage"] = "local"
    server_files: list[str] = []
    remote_files: list[str] = []
    client_files: list[object] = []
    cloud_storage_id: int | None = None
    filename_pattern: str | None = None
    job_file_mapping: list[list[str]] | None = None
    server_files_exclude: list[str] = []
    validation_params: dict[str, object] | None = None


def check_data_request(request: DataRequest) -> None:
    errors = ErrorCollector()
    if not 1 <= request.image_quality <= 100:
        errors.add("image_quality", "must be between 1 and 100")
    if request.chunk_size is not None and request.chunk_size < 1:
        errors.add("chunk_size", "must be a positive number")
    if request.start_frame < 0:
        errors.add("start_frame", "must not be negative")
    if request.stop_frame is not None and request.stop_frame < request.start_frame:
        errors.add("stop_frame", "must not be less than start_frame")
    if request.remote_files:
        errors.add("remote_files", "remote files are not supported so far")
    if request.cloud_storage_id is not None:
        _check_cloud_files(errors, request)
    errors.raise_if_any()


def _check_cloud_files(errors: ErrorCollector, request: DataRequest) -> None:
    """Files from a bucket: keys that stay inside it, and (CVAT's rule) a manifest among them
    when the task is to read its data through the cache."""
    if not request.server_files:
        errors.add("server_files", "name the files of the cloud storage to take")
    for index, key in enumerate(request.server_files):
        if not is_safe_key(key.removesuffix("/")):  # a folder stands for what it holds
            errors.add(f"server_files[{index}]", f"{key!r} is not a usable object name")
    manifests = [key for key in request.server_files if key.endswith(".jsonl")]
    if request.use_cache and not manifests:
        errors.add("server_files", "data from a cloud storage with use_cache needs a manifest")
    if len(manifests) > 1:
        errors.add("server_files", "only one manifest may be given")
