"""Chunks of a task's frames: a stored ZIP of images or an H.264 MP4, as CVAT clients read them.

A video chunk is encoded from the decoded frames with libx264 without B-frames. As CVAT does,
``compressed`` chunks are baseline H.264 (CAVLC, no loop filter, cheap to decode in a
browser) at the CRF CVAT maps the task's ``image_quality`` to, halved in size until they are
less than 1080 pixels high; ``original`` chunks keep the size and are near-lossless.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from fractions import Fraction

import av

ORIGINAL_CRF = 17
CHUNK_RATE = 25
CHUNK_TIME_BASE = Fraction(1, CHUNK_RATE)
# What x264 is told of each frame's time: always 0. It has always been so here (PyAV numbers
# frames it is given without a time by a counter that stays 0), and x264's rate control,
# which weighs frames by their durations, gives our CRFs the sizes and quality our chunks
# have had at 0; the MP4's own times are set on the packets.
_X264_TIMES = (0, 1, CHUNK_TIME_BASE)
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
    with their times set. ``encode_mp4`` changes nothing in frames made so, so several
    threads may encode the same ones."""
    size = mp4_frame_size(width, height, quality)
    fitted = []
    for frame in frames:
        if (frame.format.name, frame.width, frame.height) != ("yuv420p", *size):
            frame = frame.reformat(*size, "yuv420p")
        if (frame.pts, frame.duration, frame.time_base) != _X264_TIMES:
            frame.pts, frame.duration, frame.time_base = _X264_TIMES
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
        fitted = fit_frames(frames, width, height, quality=quality)
        for number, packet in enumerate(_encoded(stream, fitted)):
            packet.pts = packet.dts = number  # no B-frames: decoding order is display order
            packet.duration = 1
            container.mux(packet)
    return buffer.getvalue()


def _encoded(
    stream: av.video.stream.VideoStream, frames: list[av.VideoFrame]
) -> Iterator[av.Packet]:
    for frame in frames:
        yield from stream.encode(frame)
    yield from stream.encode(None)
