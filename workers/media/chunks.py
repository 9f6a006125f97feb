"""Chunks of a task's frames: a stored ZIP of images or an H.264 MP4, as CVAT clients read them.

A video chunk is encoded from the decoded frames with libx264 (no B-frames, so a player can
show each frame as soon as it arrives); its quality follows the task's ``image_quality`` for
``compressed`` chunks, as CVAT maps it onto x264's CRF, and is near-lossless for ``original``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import av

ORIGINAL_CRF = 17
VIDEO_PRESET = "ultrafast"


def crf_for_quality(image_quality: int) -> int:
    """x264's constant rate factor for a JPEG-like quality 1..100 (100 is best)."""
    return round(51 * (100 - image_quality) / 99)


def zip_member_name(frame: int, extension: str) -> str:
    return f"{frame:06d}{extension}"


def encode_mp4(frames: Iterable[av.VideoFrame], width: int, height: int, crf: int) -> bytes:
    """An MP4 of ``frames`` at 25 fps (the rate CVAT's chunks use) with H.264 at ``crf``."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        size = (stream.width, stream.height)
        stream.options = {"preset": VIDEO_PRESET, "crf": str(crf), "bf": "0"}
        stream.thread_type = "AUTO"
        for frame in frames:
            if (frame.format.name, frame.width, frame.height) != ("yuv420p", *size):
                frame = frame.reformat(stream.width, stream.height, "yuv420p")
            frame.pts = None
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()
