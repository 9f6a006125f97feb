"""Frames, chunks and previews of a task's data, for image sets and videos alike.

The web layer asks this module for bytes and a content type; it never needs to know how the
task's media is stored:

- an image set keeps each frame's original and compressed JPEG (made at creation); chunks
  are stored ZIPs of those files, built on request (reading files is all it takes);
- a video keeps the uploaded file and its seek index. Frames are decoded on request (from
  the nearest key frame) and kept in the size-bounded ``MediaCache``; chunks are either made
  at creation (``use_cache`` off, under ``chunks/``) or made on first request and cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import msgspec
import numpy as np

from core.segments import parse_frame_filter
from workers.images import (
    build_chunk_zip,
    encode_jpeg,
    encode_png,
    make_preview,
    preview_of,
    zip_members,
)
from workers.media.cache import MediaCache
from workers.media.chunks import encode_mp4, fit_frames, zip_member_name
from workers.media.context_images import context_dir
from workers.media.video import ReaderPool, VideoIndex

QUALITIES = ("compressed", "original")
VIDEO_INDEX_FILE = "video_index.json"
SOURCE_DIR = "source"
PREVIEW_FILE = "preview.jpg"
ZIP_TYPE = "application/zip"
MP4_TYPE = "video/mp4"
_IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


@dataclass(frozen=True)
class Media:
    """Bytes to answer with and their content type."""

    body: bytes
    content_type: str


# --- where things are ---------------------------------------------------------------------


def compressed_path(media_dir: Path, frame: int) -> Path:
    return media_dir / "compressed" / f"{frame:06d}.jpg"


def original_path(media_dir: Path, frame: int, name: str) -> Path:
    return media_dir / "original" / f"{frame:06d}{Path(name).suffix.lower()}"


def prepared_chunk_path(media_dir: Path, quality: str, number: int, chunk_type: str) -> Path:
    extension = ".mp4" if chunk_type == "video" else ".zip"
    return media_dir / "chunks" / quality / f"{number:06d}{extension}"


def video_source(media_dir: Path, data: dict[str, Any]) -> Path:
    return media_dir / SOURCE_DIR / data["frames"][0]["name"]


def save_video_index(media_dir: Path, index: VideoIndex) -> None:
    (media_dir / VIDEO_INDEX_FILE).write_bytes(msgspec.json.encode(index))


def load_video_index(media_dir: Path) -> VideoIndex:
    return msgspec.json.decode((media_dir / VIDEO_INDEX_FILE).read_bytes(), type=VideoIndex)


# --- what a chunk is ----------------------------------------------------------------------


def chunk_type_of(data: dict[str, Any], quality: str) -> str:
    if quality == "original":
        return data.get("original_chunk_type") or data["chunk_type"]
    return data["chunk_type"]


def source_frames(data: dict[str, Any], frames: range) -> range:
    """The video frame numbers of task frames ``frames``."""
    step = parse_frame_filter(data["frame_filter"])
    start = data["start_frame"]
    return range(start + frames.start * step, start + frames.stop * step, step)


def encode_frame(image: np.ndarray, quality: str, image_quality: int) -> bytes:
    """A decoded video frame as served: JPEG at the task's quality, or lossless PNG."""
    if quality == "compressed":
        return encode_jpeg(image, image_quality, "frame")
    return encode_png(image, "frame")


def frame_type(quality: str) -> str:
    return "image/jpeg" if quality == "compressed" else "image/png"


ChunkInputs = list[av.VideoFrame] | list[np.ndarray]


def chunk_inputs(
    frames: Iterable[av.VideoFrame], data: dict[str, Any], quality: str, size: tuple[int, int]
) -> ChunkInputs:
    """What a chunk of ``quality`` is made from: frames fitted to the MP4 encoder, or BGR
    images for a ZIP. Building the chunk only reads them, so chunks of both qualities may be
    built from them at once."""
    if chunk_type_of(data, quality) == "video":
        return fit_frames(frames, size[0], size[1], quality=quality)
    return [frame.to_ndarray(format="bgr24") for frame in frames]


def build_video_chunk(
    inputs: ChunkInputs,
    members: range,
    data: dict[str, Any],
    quality: str,
    size: tuple[int, int],
) -> bytes:
    """One chunk (MP4, or ZIP of frame images) of task frames ``members`` from their
    ``chunk_inputs``, in order."""
    if chunk_type_of(data, quality) == "video":
        return encode_mp4(
            inputs, size[0], size[1], quality=quality, image_quality=data["image_quality"]
        )
    extension = ".jpeg" if quality == "compressed" else ".png"
    return zip_members(
        [
            (zip_member_name(frame, extension), encode_frame(image, quality, data["image_quality"]))
            for frame, image in zip(members, inputs, strict=True)
        ]
    )


# --- the one way in -------------------------------------------------------------------------


class MediaLibrary:
    """Serves a task's frames, chunks and previews; holds the cache and the open videos."""

    def __init__(self, cache: MediaCache, readers: ReaderPool | None = None) -> None:
        self.cache = cache
        self.readers = readers or ReaderPool()

    def frame(self, media_dir: Path, data: dict[str, Any], frame: int, quality: str) -> Media:
        if not _is_video(data):
            return _image_frame(media_dir, data, frame, quality)
        (number,) = source_frames(data, range(frame, frame + 1))
        key = f"{_owner(data)}/frame/{quality}/{number}"
        body = self.cache.get_or_make(
            key,
            lambda: encode_frame(
                self._decode_one(media_dir, data, number), quality, data["image_quality"]
            ),
        )
        return Media(body, frame_type(quality))

    def chunk(
        self,
        media_dir: Path,
        data: dict[str, Any],
        members: range,
        number: int | None,
        quality: str,
    ) -> Media:
        """The chunk of task frames ``members``; ``number`` when it is a whole task chunk."""
        if not _is_video(data):
            return Media(_image_chunk(media_dir, data, members, quality), ZIP_TYPE)
        chunk_type = chunk_type_of(data, quality)
        content_type = MP4_TYPE if chunk_type == "video" else ZIP_TYPE
        if number is not None:
            prepared = prepared_chunk_path(media_dir, quality, number, chunk_type)
            if prepared.exists():
                return Media(prepared.read_bytes(), content_type)
        key = f"{_owner(data)}/chunk/{quality}/{members.start}-{members.stop}"
        body = self.cache.get_or_make(
            key, lambda: self._make_chunk(media_dir, data, members, quality)
        )
        return Media(body, content_type)

    def preview(self, media_dir: Path, data: dict[str, Any], frame: int) -> Media:
        if not _is_video(data):
            return Media(
                make_preview(compressed_path(media_dir, stored_frame(data, frame))), "image/jpeg"
            )
        if frame == 0 and (media_dir / PREVIEW_FILE).exists():
            return Media((media_dir / PREVIEW_FILE).read_bytes(), "image/jpeg")
        (number,) = source_frames(data, range(frame, frame + 1))
        key = f"{_owner(data)}/preview/{number}"
        body = self.cache.get_or_make(
            key, lambda: preview_of(self._decode_one(media_dir, data, number), "frame")
        )
        return Media(body, "image/jpeg")

    def context_images(self, media_dir: Path, data: dict[str, Any], frame: int) -> Media | None:
        """A ZIP of the frame's context images, in their order; None if it has none."""
        if _is_video(data) or not data["frames"][frame].get("related_files"):
            return None
        files = sorted(context_dir(media_dir, stored_frame(data, frame)).iterdir())
        return Media(build_chunk_zip(files, [path.name for path in files]), ZIP_TYPE)

    def forget(self, media_dir: Path, data: dict[str, Any]) -> None:
        """Closes the task's video and drops its cached media (its data is going away)."""
        if _is_video(data):
            self.readers.forget(video_source(media_dir, data))
        self.cache.drop_prefix(_owner(data))

    def _decode_one(self, media_dir: Path, data: dict[str, Any], number: int) -> np.ndarray:
        path = video_source(media_dir, data)
        with self.readers.using(path, _index(media_dir), near=number) as reader:
            return reader.frame(number)

    def _make_chunk(
        self, media_dir: Path, data: dict[str, Any], members: range, quality: str
    ) -> bytes:
        index = _index(media_dir)
        wanted = source_frames(data, members)
        with self.readers.using(video_source(media_dir, data), index, near=wanted.start) as reader:
            frames = reader.video_frames(wanted.start, wanted[-1], wanted.step)
            size = (index.width, index.height)
            inputs = chunk_inputs(frames, data, quality, size)
        return build_video_chunk(inputs, members, data, quality, size)

    def close(self) -> None:
        self.readers.close()


def _is_video(data: dict[str, Any]) -> bool:
    return data.get("video") is not None


def _owner(data: dict[str, Any]) -> str:
    return f"data{data['data_id']}"


def _index(media_dir: Path) -> VideoIndex:
    return load_video_index(media_dir)


def _image_frame(media_dir: Path, data: dict[str, Any], frame: int, quality: str) -> Media:
    path = _image_file(media_dir, data, frame, quality)
    return Media(path.read_bytes(), _IMAGE_TYPES.get(path.suffix, "application/octet-stream"))


def _image_file(media_dir: Path, data: dict[str, Any], frame: int, quality: str) -> Path:
    if quality == "compressed":
        return compressed_path(media_dir, stored_frame(data, frame))
    return original_path(media_dir, stored_frame(data, frame), data["frames"][frame]["name"])


def stored_frame(data: dict[str, Any], frame: int) -> int:
    """The stored image task frame `frame` shows (a honeypot shows its pool frame's)."""
    media = data.get("media_frames")
    return media[frame] if media else frame


def _image_chunk(media_dir: Path, data: dict[str, Any], members: range, quality: str) -> bytes:
    paths = [_image_file(media_dir, data, frame, quality) for frame in members]
    names: Sequence[str] = [
        zip_member_name(frame, ".jpeg" if quality == "compressed" else path.suffix)
        for frame, path in zip(members, paths, strict=True)
    ]
    return build_chunk_zip(paths, names)
