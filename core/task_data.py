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


class ValidationLayout(msgspec.Struct):
    """How a task is validated (CVAT's ValidationLayout). `frames` are the validation frames:
    the ground truth job's ("gt") or the pool at the end of the task ("gt_pool"). In a pool
    task each honeypot frame of an annotation job shows the pool frame at the same position
    of `honeypot_real_frames`."""

    mode: Literal["gt", "gt_pool"]
    frames: list[int]
    frames_per_job_count: int | None = None
    disabled_frames: list[int] = []
    honeypot_frames: list[int] = []
    honeypot_real_frames: list[int] = []

    @property
    def active_frames(self) -> list[int]:
        disabled = set(self.disabled_frames)
        return [frame for frame in self.frames if frame not in disabled]

    @property
    def real_frames(self) -> dict[int, int]:
        """Honeypot frame -> the pool frame it shows."""
        return dict(zip(self.honeypot_frames, self.honeypot_real_frames, strict=True))


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
    validation: ValidationLayout | None = None
    media_frames: list[int] | None = None  # the stored image of each frame; None: its own


class ValidationParams(msgspec.Struct):
    """CVAT's validation_params of the data request: a ground truth job made with the data
    ("gt"), or a validation pool mixed into the jobs as honeypots ("gt_pool")."""

    mode: Literal["gt", "gt_pool"]
    frame_selection_method: Literal["random_uniform", "random_per_job", "manual"]
    random_seed: int | None = None
    frames: list[str] | None = None  # file names, for "manual"
    frame_count: int | None = None
    frame_share: float | None = None
    frames_per_job_count: int | None = None
    frames_per_job_share: float | None = None


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
    validation_params: ValidationParams | None = None


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
    if request.validation_params is not None:
        _check_validation_params(errors, request, request.validation_params)
    errors.raise_if_any()


def _check_validation_params(
    errors: ErrorCollector, request: DataRequest, params: ValidationParams
) -> None:
    """CVAT's ValidationParamsSerializer and the data request's own rules for a pool."""

    def add(field: str, reason: str) -> None:
        errors.add(f"validation_params.{field}", reason)

    def one_of(*fields: str) -> None:
        given = [field for field in fields if getattr(params, field) is not None]
        if len(given) != 1:
            add(fields[0], f"give exactly one of {', '.join(fields)}")

    method = params.frame_selection_method
    if params.mode == "gt_pool":
        if method == "random_per_job":
            add("frame_selection_method", "a pool takes random_uniform or manual")
        one_of("frames_per_job_count", "frames_per_job_share")
        if request.sorting_method != "random":
            add("mode", 'validation mode "gt_pool" can only be used with "random" sorting')
        if request.job_file_mapping:
            add("mode", 'validation mode "gt_pool" cannot be used with "job_file_mapping"')
    if method == "random_uniform":
        one_of("frame_count", "frame_share")
    elif method == "random_per_job":
        one_of("frames_per_job_count", "frames_per_job_share")
    elif not params.frames:
        add("frames", 'give the file names of the validation frames for "manual"')
    if params.frames is not None and method != "manual":
        add("frames", '"frames" can only be used when "frame_selection_method" is "manual"')
    if params.frames and len(set(params.frames)) != len(params.frames):
        add("frames", "Frames must not repeat")
    for field in ("frame_count", "frames_per_job_count"):
        value = getattr(params, field)
        if value is not None and value < 1:
            add(field, "Ensure this value is greater than or equal to 1.")
    for field in ("frame_share", "frames_per_job_share"):
        value = getattr(params, field)
        if value is not None and not 0 < value <= 1:
            add(field, "Ensure this value is in (0, 1].")
    if params.random_seed is not None and not 0 <= params.random_seed < 2**63:
        add("random_seed", "Ensure this value is between 0 and 2^63 - 1.")


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
