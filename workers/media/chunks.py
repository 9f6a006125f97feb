"""Chunks of a task's frames: a stored ZIP of images or an H.264 MP4, as CVAT clients read them.

A video chunk is encoded from the decoded frames with libx264 without B-frames. As CVAT does,
``compressed`` chunks are baseline H.264 (CAVLC, no loop filter, cheap to decode in a
browser) at the CRF CVAT maps the task's ``image_quality`` to, halved in size until they are
less than 1080 pixels high; ``original`` chunks keep the size and are near-lossless.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction

import av

ORIGINAL_CRF = 20
CHUNK_RATE = 25
CHUNK_TIME_BASE = Fraction(1, CHUNK_RATE)
VIDEO_PRESET = "ultrafast"


def crf_for_quality(image_quality: int) -> int:
    """x264's constant rate factor for a JPEG-like quality 1..100 (100 is best)."""
    return round(51 * (100 - image_quality) / 99)


def zip_member_name(frame: int, extension: str) -> str:
    return f"{frame:06d}{extension}"


def compressed_size(width: int, height: int) -> tuple[int, int]:
    """The frame size of a compressed video chunk (CVAT halves it while 1080 or higher)."""
    factor = 1
    while height / factor >= 1080:
        factor *= 2
    return max(width // factor, 2), max(height // factor, 2)


def mp4_frame_size(width: int, height: int, quality: str) -> tuple[int, int]:
    """The frame size of a video chunk of ``quality`` (even sides, as yuv420p needs)."""
    if quality != "original":
        width, height = compressed_size(width, height)
    return width - width % 2, height - height % 2


def fit_frames(
    frames: Iterable[av.VideoFrame], width: int, height: int, *, quality: str
) -> list[av.VideoFrame]:
    """The frames of a video chunk as its encoder takes them: at the chunk's size in yuv420p,
    numbered from 0 at the chunk's rate. ``encode_mp4`` changes nothing in frames made so,
    so several threads may encode the same ones."""
    size = mp4_frame_size(width, height, quality)
    fitted = []
    for number, frame in enumerate(frames):
        if (frame.format.name, frame.width, frame.height) != ("yuv420p", *size):
            # area averaging: the right filter for halving, and cheaper than bicubic
            frame = frame.reformat(*size, "yuv420p", interpolation="AREA")
        if (frame.pts, frame.duration, frame.time_base) != (number, 1, CHUNK_TIME_BASE):
            # x264 gives a frame bits by its duration: one tick at the chunk's rate
            frame.pts, frame.duration, frame.time_base = number, 1, CHUNK_TIME_BASE
        fitted.append(frame)
    return fitted


def encode_mp4(
    frames: Iterable[av.VideoFrame], width: int, height: int, *, quality: str, image_quality: int
) -> bytes:
    """An MP4 of ``frames`` at 25 fps (the rate CVAT's chunks use), H.264 of ``quality``."""
    if quality == "original":
        options = {"crf": str(ORIGINAL_CRF)}
    else:
        options = {
            "profile": "baseline",
            "coder": "0",
            "wpredp": "0",
            "flags": "-loop",
            "crf": str(crf_for_quality(image_quality)),
        }
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=CHUNK_RATE)
        stream.width, stream.height = mp4_frame_size(width, height, quality)
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": VIDEO_PRESET, "bf": "0", **options}
        stream.thread_type = "AUTO"
        for frame in fit_frames(frames, width, height, quality=quality):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()
