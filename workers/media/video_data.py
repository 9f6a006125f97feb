"""Turns an uploaded video into a task's data: seek index, preview and (unless use_cache)
every chunk, made in one decoding pass."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av

from core.segments import DEFAULT_VIDEO_CHUNK_SIZE, frame_range, parse_frame_filter
from core.task_data import DataRequest, FrameMeta, TaskData, VideoSource
from workers.images import MediaError, preview_of
from workers.media.library import (
    PREVIEW_FILE,
    QUALITIES,
    SOURCE_DIR,
    ChunkInputs,
    build_video_chunk,
    chunk_inputs,
    chunk_type_of,
    prepared_chunk_path,
    save_video_index,
)
from workers.media.manifest import KeyFrame, Manifest, VideoProperties, write_manifest
from workers.media.video import VideoIndex, VideoReader, index_video

PROGRESS_INTERVAL = 0.5  # seconds between progress reports
# chunks decoded and not yet written: one being encoded while the next is decoded
CHUNKS_IN_FLIGHT = 2
Progress = Callable[[float, str], None]


def ingest_video(
    source: Path, media_dir: Path, request: DataRequest, *, data_id: int, progress: Progress
) -> TaskData:
    """Moves the video under media_dir and prepares what the task needs to serve it."""
    stored = media_dir / SOURCE_DIR / source.name
    stored.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, stored)  # the upload folder is removed afterwards
    index = index_video(stored, check_whole=request.use_cache)
    save_video_index(media_dir, index)
    write_manifest(media_dir, video_manifest(source.name, index))
    step = parse_frame_filter(request.frame_filter)
    try:
        kept = frame_range(index.frame_count, request.start_frame, request.stop_frame, step)
    except ValueError as error:
        raise MediaError(f"{source.name}: {error}") from error
    zip_chunks = request.use_zip_chunks
    data = TaskData(
        data_id=data_id,
        image_quality=request.image_quality,
        chunk_size=request.chunk_size or DEFAULT_VIDEO_CHUNK_SIZE,
        size=len(kept),
        start_frame=kept[0],
        stop_frame=kept[-1],
        frame_filter=request.frame_filter,
        sorting_method=request.sorting_method,
        frames=[FrameMeta(name=source.name, width=index.width, height=index.height)],
        use_zip_chunks=zip_chunks,
        storage_method="cache" if request.use_cache else "file_system",
        mode="interpolation",
        chunk_type="imageset" if zip_chunks else "video",
        original_chunk_type="video",
        use_cache=request.use_cache,
        video=VideoSource(frame_count=index.frame_count),
    )
    reader = VideoReader(stored, index)
    try:
        (media_dir / PREVIEW_FILE).write_bytes(preview_of(reader.frame(kept[0]), source.name))
        if not request.use_cache:
            _prepare_chunks(reader, index, media_dir, data, kept, step, progress)
    finally:
        reader.close()
    return data


def video_manifest(name: str, index: VideoIndex) -> Manifest:
    """CVAT's video manifest: the video's properties and its key frames with their pts."""
    return Manifest(
        type="video",
        video=VideoProperties(name, (index.width, index.height), index.frame_count),
        key_frames=[KeyFrame(number, index.pts[number]) for number in index.keyframes],
    )


def _prepare_chunks(
    reader: VideoReader,
    index: VideoIndex,
    media_dir: Path,
    data: TaskData,
    kept: list[int],
    step: int,
    progress: Progress,
) -> None:
    """Every chunk of both qualities, decoding the video once. Each quality has its own
    encoding thread (PyAV lets go of the GIL while x264 works) and the next chunk is
    decoded while the last one is encoded, so decoding and both encodings overlap. This
    thread fits the frames to each encoder first, so the encoders only read them."""
    doc: dict[str, Any] = {
        "image_quality": data.image_quality,
        "chunk_type": data.chunk_type,
        "original_chunk_type": data.original_chunk_type,
    }
    size = (index.width, index.height)
    chunk_count = -(-data.size // data.chunk_size)
    reported = time.monotonic()
    in_flight: deque[list[Future[None]]] = deque()
    with ThreadPoolExecutor(len(QUALITIES), thread_name_prefix="chunk-encoder") as encoders:
        try:
            for number, members, decoded in _decoded_chunks(reader, data, kept, step):
                if len(in_flight) == CHUNKS_IN_FLIGHT:
                    _finish(in_flight.popleft())
                in_flight.append(
                    [
                        encoders.submit(
                            _write_chunk,
                            media_dir,
                            doc,
                            quality,
                            number,
                            members,
                            chunk_inputs(decoded, doc, quality, size),
                            size,
                        )
                        for quality in QUALITIES
                    ]
                )
                if time.monotonic() - reported > PROGRESS_INTERVAL:
                    progress(number / chunk_count, f"Prepared {number} of {chunk_count} chunks")
                    reported = time.monotonic()
            while in_flight:
                _finish(in_flight.popleft())
        finally:
            for futures in in_flight:
                for future in futures:
                    future.cancel()


def _decoded_chunks(
    reader: VideoReader, data: TaskData, kept: list[int], step: int
) -> Iterator[tuple[int, range, list[av.VideoFrame]]]:
    """(chunk number, its task frames, their decoded frames) for every chunk, in order."""
    frames = reader.video_frames(kept[0], kept[-1], step)
    for number in range(-(-data.size // data.chunk_size)):
        members = range(number * data.chunk_size, min((number + 1) * data.chunk_size, data.size))
        decoded = [frame for _, frame in zip(members, frames, strict=False)]
        if len(decoded) != len(members):
            raise MediaError(f"{data.frames[0].name} is damaged: frames are missing")
        yield number, members, decoded


def _write_chunk(
    media_dir: Path,
    doc: dict[str, Any],
    quality: str,
    number: int,
    members: range,
    inputs: ChunkInputs,
    size: tuple[int, int],
) -> None:
    path = prepared_chunk_path(media_dir, quality, number, chunk_type_of(doc, quality))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_video_chunk(inputs, members, doc, quality, size))


def _finish(futures: list[Future[None]]) -> None:
    for future in futures:
        future.result()
