"""Chunks of a task's frames: a stored ZIP of images or an H.264 MP4, as CVAT clients read them.

A video chunk is encoded from the decoded frames with libx264 without B-frames. As CVAT does,
``compressed`` chunks are baseline H.264 (CAVLC, no loop filter, cheap to decode in a
browser) at the CRF CVAT maps the task's ``image_quality`` to, halved in size until they are
less than 1080 pixels high; ``original`` chunks keep the size and are near-lossless.
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


def compressed_size(width: int, height: int) -> tuple[int, int]:
    """The frame size of a compressed video chunk (CVAT halves it while 1080 or higher)."""
    factor = 1
    while height / factor >= 1080:
        factor *= 2
    return max(width // factor, 2), max(height // factor, 2)


def encode_mp4(
    frames: Iterable[av.VideoFrame], width: int, height: int, *, quality: str, image_quality: int
) -> bytes:
    """An MP4 of ``frames`` at 25 fps (the rate CVAT's chunks use), H.264 of ``quality``."""
    if quality == "original":
        options = {"crf": str(ORIGINAL_CRF)}
    else:
        width, height = compressed_size(width, height)
        options = {
            "profile": "baseline",
            "coder": "0",
            "wpredp": "0",
            "flags": "-loop",
            "crf": str(crf_for_quality(image_quality)),
        }
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": VIDEO_PRESET, "bf": "0", **options}
        stream.thread_type = "AUTO"
        size = (stream.width, stream.height)
        for frame in frames:
            if (frame.format.name, frame.width, frame.height) != ("yuv420p", *size):
                frame = frame.reformat(*size, "yuv420p")
            frame.pts = None
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()
