"""Videos with PyAV: a seek index made by demuxing, and frame-exact, key-frame aware reads.

``index_video`` reads the container's packets once (no decoding) to learn every frame's
presentation time and which frames are key frames, then decodes only the first frame and
the last group of pictures to prove the file is whole. ``VideoReader`` seeks to the key
frame at or before a wanted frame and decodes forward from there; it keeps its place, so a
following frame of the same group continues where it stopped instead of seeking again.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import msgspec
import numpy as np

from workers.images import MAX_PIXELS, MAX_SIDE, MediaError

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .ts .mts .m2ts .wmv .flv .3gp .ogv".split()
)
MAX_FRAMES = 10_000_000
_UNREADABLE = (av.error.FFmpegError, ValueError, IndexError, OSError)


class VideoIndex(msgspec.Struct, frozen=True):
    """What is known of a video after demuxing it: frame times in display order, key frames."""

    width: int
    height: int
    pts: list[int]
    keyframes: list[int]  # frame numbers (display order) of the key frames, ascending

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    def keyframe_before(self, frame: int) -> int:
        """The last key frame at or before ``frame`` (decoding must start there)."""
        position = bisect.bisect_right(self.keyframes, frame) - 1
        return self.keyframes[max(position, 0)]


def is_video(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS


def index_video(path: Path, *, check_whole: bool = True) -> VideoIndex:
    """The seek index of a video; MediaError if it has no video stream or is damaged.

    ``check_whole=False`` skips decoding the last frames, for a caller about to decode
    every frame anyway (and to notice missing ones then)."""
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path.name)
            times: list[int] = []
            key_times: list[int] = []
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                times.append(packet.pts)
                if packet.is_keyframe:
                    key_times.append(packet.pts)
                if len(times) > MAX_FRAMES:
                    raise MediaError(f"{path.name} has more than {MAX_FRAMES} frames")
            width, height = stream.codec_context.width, stream.codec_context.height
    except _UNREADABLE as error:
        raise MediaError(f"{path.name} is not a readable video ({_reason(error)})") from error
    if not times:
        raise MediaError(f"{path.name} has no video frames")
    if width <= 0 or height <= 0 or max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise MediaError(f"{path.name} has an unusable frame size {width}x{height}")
    times.sort()
    frame_of = {pts: frame for frame, pts in enumerate(times)}
    keyframes = sorted({frame_of[pts] for pts in key_times})
    if not keyframes or keyframes[0] != 0:
        raise MediaError(f"{path.name} does not start with a key frame")
    index = VideoIndex(width=width, height=height, pts=times, keyframes=keyframes)
    if check_whole:
        _check_whole(path, index)
    return index


def _video_stream(container: av.container.InputContainer, name: str) -> av.video.VideoStream:
    if not container.streams.video:
        raise MediaError(f"{name} has no video stream")
    return container.streams.video[0]


def _check_whole(path: Path, index: VideoIndex) -> None:
    """Decodes the first frame and the last group of pictures: a cut file fails here."""
    reader = VideoReader(path, index)
    try:
        reader.frame(0)
        last_key = index.keyframes[-1]
        decoded = sum(1 for _ in reader.frames(last_key, index.frame_count - 1))
    finally:
        reader.close()
    if decoded != index.frame_count - last_key:
        raise MediaError(f"{path.name} is damaged: its last frames cannot be decoded")


class VideoReader:
    """Decodes frames of one video by frame number; not thread-safe (see ReaderPool)."""

    def __init__(self, path: Path, index: VideoIndex) -> None:
        self.path = path
        self.index = index
        self._frame_of = {pts: frame for frame, pts in enumerate(index.pts)}
        try:
            self._container = av.open(str(path))
            self._stream = _video_stream(self._container, path.name)
        except _UNREADABLE as error:
            raise MediaError(f"{path.name} is not a readable video ({_reason(error)})") from error
        self._stream.thread_type = "AUTO"
        self._decoded: Iterator[av.VideoFrame] | None = None
        self._position = -1  # the frame number last returned by the decoder
        self.lock = threading.Lock()
        self.closed = False

    def frame(self, number: int) -> np.ndarray:
        """Frame ``number`` (display order) as a BGR array."""
        for frame in self.frames(number, number):
            return frame
        raise MediaError(f"frame {number} of {self.path.name} cannot be decoded")

    def frames(self, first: int, last: int, step: int = 1) -> Iterator[np.ndarray]:
        """Every ``step``-th frame of ``first..last`` as BGR arrays."""
        for image in self.video_frames(first, last, step):
            yield image.to_ndarray(format="bgr24")

    def video_frames(self, first: int, last: int, step: int = 1) -> Iterator[av.VideoFrame]:
        """Every ``step``-th frame of ``first..last`` as decoded PyAV frames, decoding from
        the nearest key frame."""
        for number, image in self._decode(first, last):
            if (number - first) % step == 0:
                yield image

    def _decode(self, first: int, last: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Frames ``first..last`` in order. The first pass skips decoding frames no other
        frame refers to until ``first`` is reached; should that lose a wanted frame (the
        decoder may apply the setting late), a second pass decodes everything from there."""
        if not 0 <= first <= last < self.index.frame_count:
            raise ValueError(f"frames {first}..{last} are outside the video")
        wanted = first
        for skipping in (True, False):
            keyframe = self.index.keyframe_before(wanted)
            if self._decoded is None or not keyframe <= self._position < wanted:
                self._seek(keyframe, skip_before=wanted if skipping else None)
            for number, image in self._continue(last):
                if number < wanted:
                    continue
                if number > wanted:  # a wanted frame was not decoded
                    self._decoded = None
                    break
                yield number, image
                if number == last:
                    return
                wanted += 1
            if not skipping or self._decoded is not None:
                break
        raise MediaError(f"{self.path.name} is damaged: frame {wanted} cannot be decoded")

    def _continue(self, last: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decoded frames (with their numbers) from where the decoder is, up to ``last``."""
        assert self._decoded is not None
        try:
            for image in self._decoded:
                number = self._frame_of.get(image.pts, -1)
                if number < 0:
                    continue
                self._position = number
                yield number, image
                if number >= last:
                    return
        except _UNREADABLE as error:
            self._decoded = None
            raise MediaError(f"{self.path.name} cannot be decoded ({_reason(error)})") from error
        self._decoded = None

    def _seek(self, keyframe: int, *, skip_before: int | None) -> None:
        self._container.seek(self.index.pts[keyframe], stream=self._stream, backward=True)
        self._decoded = self._packets_decoded(
            self.index.pts[skip_before] if skip_before is not None else None
        )
        self._position = -1

    def _packets_decoded(self, skip_before_pts: int | None) -> Iterator[av.VideoFrame]:
        """Decodes the stream from where the container is. With ``skip_before_pts``, frames
        shown before that time that no other frame refers to are not decoded at all: about
        a third of the work in a stream with B-frames, and never a frame that is needed."""
        codec = self._stream.codec_context
        for packet in self._container.demux(self._stream):
            skippable = (
                skip_before_pts is not None
                and packet.pts is not None
                and packet.pts < skip_before_pts
            )
            codec.skip_frame = "NONREF" if skippable else "DEFAULT"
            yield from codec.decode(packet)

    def close(self) -> None:
        self.closed = True
        self._container.close()


def _reason(error: Exception) -> str:
    """PyAV's message without the server-side path it names."""
    return getattr(error, "strerror", None) or type(error).__name__


class ReaderPool:
    """Open readers kept between requests (least recently used closed first)."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._readers: OrderedDict[Path, VideoReader] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def using(self, path: Path, index: VideoIndex) -> Iterator[VideoReader]:
        """An open reader of ``path``, for this thread alone until the block ends."""
        while True:
            reader = self._reader(path, index)
            with reader.lock:
                if not reader.closed:  # else it was evicted while we waited for it
                    yield reader
                    return

    def _reader(self, path: Path, index: VideoIndex) -> VideoReader:
        evicted = []
        with self._lock:
            reader = self._readers.pop(path, None)
            if reader is None or reader.closed:
                reader = VideoReader(path, index)
            self._readers[path] = reader
            while len(self._readers) > self._size:
                evicted.append(self._readers.popitem(last=False)[1])
        for oldest in evicted:  # outside the pool's lock: one may still be decoding
            with oldest.lock:
                oldest.close()
        return reader

    def forget(self, path: Path) -> None:
        with self._lock:
            reader = self._readers.pop(path, None)
        if reader is not None:
            with reader.lock:
                reader.close()

    def close(self) -> None:
        with self._lock:
            readers, self._readers = list(self._readers.values()), OrderedDict()
        for reader in readers:
            with reader.lock:
                reader.close()
