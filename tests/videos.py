"""Small videos written with PyAV for tests, and their frames as PyAV decodes them."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np


def write_video(
    path: Path,
    *,
    width: int = 64,
    height: int = 48,
    frames: int = 90,
    keyint: int = 25,
    faststart: bool = False,
) -> list[np.ndarray]:
    """An H.264 MP4 whose frames all differ (a moving ramp and a block per frame number);
    returns every frame decoded back from the file, BGR."""
    ramp = np.tile(np.linspace(0, 200, width, dtype=np.uint8), (height, 1))
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0"}
        for number in range(frames):
            image = np.dstack(
                [np.roll(ramp, number, axis=1), ramp, np.full_like(ramp, (number * 7) % 256)]
            )
            image[: height // 4, : width // 4] = 255 - (number * 3) % 256
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return decode_all(path.read_bytes())


def decode_all(data: bytes) -> list[np.ndarray]:
    """Every frame of an encoded video (file bytes), BGR, in display order."""
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def key_frames(path: Path) -> list[int]:
    """Display-order numbers of the key frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    order = sorted(pts for pts, _ in packets)
    return sorted(order.index(pts) for pts, key in packets if key)
