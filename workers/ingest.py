"""Turns uploaded files into a task's media: images (also from archives) or one video.

Runs in a worker (infra/ingest_jobs.py), or in the server process without a work queue.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from core.segments import default_chunk_size, frame_range, order_files, parse_frame_filter
from core.task_data import DataRequest, FrameMeta, TaskData
from workers.images import IMAGE_EXTENSIONS, MediaError, probe_and_compress
from workers.media.archives import extract_media, is_archive
from workers.media.context_images import split_context_images, store_context_images
from workers.media.library import compressed_path, original_path
from workers.media.manifest import (
    INDEX_FILE,
    Manifest,
    image_items,
    is_manifest,
    parse_manifest,
    write_manifest,
)
from workers.media.video import is_video
from workers.media.video_data import ingest_video

ORDER_FILE = ".order"
PROGRESS_INTERVAL = 0.5  # seconds between progress reports
Progress = Callable[[float, str], None]


def upload_order(upload_dir: Path) -> list[str]:
    """The uploaded file names in the order they arrived."""
    order_file = upload_dir / ORDER_FILE
    if not order_file.exists():
        return []
    return [line for line in order_file.read_text().splitlines() if line]


def record_upload(upload_dir: Path, name: str) -> None:
    record_uploads(upload_dir, [name])


def record_uploads(upload_dir: Path, names: list[str]) -> None:
    """Appends file names to the upload order, in one write for a whole request's files."""
    if names:
        with (upload_dir / ORDER_FILE).open("a") as order_file:
            order_file.write("".join(name + "\n" for name in names))


def ingest_media(
    upload_dir: Path,
    media_dir: Path,
    request: DataRequest,
    *,
    data_id: int,
    seed: int,
    progress: Progress,
) -> TaskData:
    """Makes the task's media under media_dir from the uploads; returns the task's data.

    Archives are unpacked first (their members take their place in the upload order). The
    uploads must then be either images only or exactly one video.
    """
    names = upload_order(upload_dir)
    if not names:
        raise MediaError("no files were uploaded")
    names, manifest = _take_manifest(upload_dir, names)
    names = _unpack_archives(upload_dir, names)
    videos = [name for name in names if is_video(name)]
    if videos:
        if len(names) > 1:
            raise MediaError(
                f"a task takes either images or one video; got {len(videos)} video(s) "
                f"and {len(names) - len(videos)} other file(s)"
            )
        if manifest is not None and manifest.file_names() != [videos[0]]:
            raise MediaError(f"the manifest does not describe {videos[0]}")
        source = upload_dir / videos[0]
        return ingest_video(source, media_dir, request, data_id=data_id, progress=progress)
    if manifest is not None:
        request = _follow_manifest(manifest, names, request)
    data = ingest_images(
        upload_dir, names, media_dir, request, data_id=data_id, seed=seed, progress=progress
    )
    if manifest is not None:
        _check_sizes(manifest, data)
    return data


def _take_manifest(upload_dir: Path, names: list[str]) -> tuple[list[str], Manifest | None]:
    """Sets aside a manifest.jsonl (and index.json) uploaded with the data: CVAT takes at
    most one, next to the files (not inside an archive)."""
    manifests = [name for name in names if is_manifest(name)]
    if len(manifests) > 1:
        raise MediaError(f"only one manifest may come with the data; got {len(manifests)}")
    rest = [name for name in names if name not in manifests and Path(name).name != INDEX_FILE]
    if not manifests:
        return rest, None
    manifest = parse_manifest((upload_dir / manifests[0]).read_bytes())
    return rest, manifest


def _follow_manifest(manifest: Manifest, names: list[str], request: DataRequest) -> DataRequest:
    """Checks that the manifest lists exactly the uploaded images; with predefined sorting its
    order is the task's order."""
    if manifest.type != "images":
        raise MediaError("a video manifest came with images")
    listed = manifest.file_names()
    missing = sorted(set(listed) - set(names))
    extra = sorted(set(names) - set(listed) - {n for n in names if "related_images/" in n})
    if missing:
        raise MediaError(f"the manifest lists files that were not given: {', '.join(missing[:5])}")
    if extra:
        raise MediaError(f"files missing from the manifest: {', '.join(extra[:5])}")
    if request.sorting_method == "predefined" and not request.upload_file_order:
        return msgspec.structs.replace(request, upload_file_order=listed)
    return request


def _check_sizes(manifest: Manifest, data: TaskData) -> None:
    described = {item.file_name: item for item in manifest.images}
    for frame in data.frames:
        item = described[frame.name]
        if item.width is not None and (item.width, item.height) != (frame.width, frame.height):
            raise MediaError(
                f"the manifest says {frame.name} is {item.width}x{item.height};"
                f" it is {frame.width}x{frame.height}"
            )


def _unpack_archives(upload_dir: Path, names: list[str]) -> list[str]:
    unpacked: list[str] = []
    for name in names:
        if not is_archive(name):
            unpacked.append(name)
            continue
        members = extract_media(upload_dir / name, upload_dir)
        (upload_dir / name).unlink()
        unpacked.extend(members)
    if len(set(unpacked)) != len(unpacked):
        raise MediaError("two uploaded files (or archive members) have the same name")
    return unpacked


def ingest_images(
    upload_dir: Path,
    names: list[str],
    media_dir: Path,
    request: DataRequest,
    *,
    data_id: int,
    seed: int,
    progress: Progress,
) -> TaskData:
    """Writes originals and compressed frames (and their context images) under media_dir;
    returns the task's data."""
    _check_extensions(names)
    names, context = split_context_images(names)
    ordered = order_files(
        names,
        request.sorting_method,
        upload_order=request.upload_file_order or None,
        seed=seed,
    )
    step = parse_frame_filter(request.frame_filter)
    kept = frame_range(len(ordered), request.start_frame, request.stop_frame, step)
    (media_dir / "original").mkdir(parents=True, exist_ok=True)
    (media_dir / "compressed").mkdir(parents=True, exist_ok=True)
    frames: list[FrameMeta] = []
    reported = time.monotonic()
    for frame, index in enumerate(kept):
        name = ordered[index]
        meta = _ingest_frame(upload_dir, name, media_dir, frame, request)
        if name in context:
            meta.related_files = store_context_images(upload_dir, context[name], media_dir, frame)
        frames.append(meta)
        if time.monotonic() - reported > PROGRESS_INTERVAL:
            progress(frame / len(kept), f"Processed {frame + 1} of {len(kept)} images")
            reported = time.monotonic()
    first = frames[0]
    write_manifest(
        media_dir,
        Manifest(
            type="images",
            images=image_items((frame.name, frame.width, frame.height) for frame in frames),
        ),
    )
    return TaskData(
        data_id=data_id,
        image_quality=request.image_quality,
        chunk_size=request.chunk_size or default_chunk_size(first.width, first.height),
        size=len(frames),
        start_frame=request.start_frame,
        stop_frame=kept[-1],
        frame_filter=request.frame_filter,
        sorting_method=request.sorting_method,
        frames=frames,
        random_seed=seed if request.sorting_method == "random" else None,
        use_zip_chunks=request.use_zip_chunks,
        storage_method=request.storage_method,
    )


def _check_extensions(names: list[str]) -> None:
    for name in names:
        if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
            raise MediaError(f"{name} is not a supported image, video or archive")


def _ingest_frame(
    upload_dir: Path, name: str, media_dir: Path, frame: int, request: DataRequest
) -> FrameMeta:
    source = upload_dir / name
    info = probe_and_compress(source, compressed_path(media_dir, frame), request.image_quality)
    # The upload folder is removed afterwards, so the original moves rather than copies.
    os.replace(source, original_path(media_dir, frame, source.name))
    return FrameMeta(name=name, width=info.width, height=info.height)
