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
        self.closed = False

    def frames_to_decode(self, number: int) -> int:
        """How many frames decoding frame ``number`` next takes: fewer than from its key
        frame when the decoder stopped in the same group of pictures before it."""
        keyframe = self.index.keyframe_before(number)
        if self._decoded is not None and keyframe <= self._position < number:
            return number - self._position
        return number - keyframe + 1

    def continues_to(self, number: int) -> bool:
        """Whether frame ``number`` is reached without seeking."""
        return self.frames_to_decode(number) <= number - self.index.keyframe_before(number)

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
        if not self.closed:
            self.closed = True
            self._container.close()


def _reason(error: Exception) -> str:
    """PyAV's message without the server-side path it names."""
    return getattr(error, "strerror", None) or type(error).__name__


class ReaderPool:
    """Open readers kept between requests: up to ``per_video`` of one video, each left where
    its last request stopped, and ``size`` in all (the least recently used idle one closed
    first). A request takes the idle reader of its video that stopped in the wanted frame's
    group of pictures before it and so continues from there; failing that a new reader (it
    seeks, the others keep their places), or else the least recently used. So several
    people moving through one video do not make each other seek back to a key frame."""

    def __init__(self, size: int = 8, per_video: int = 3) -> None:
        self._size = size
        self._per_video = per_video
        self._readers: OrderedDict[VideoReader, None] = OrderedDict()  # oldest use first
        self._busy: set[VideoReader] = set()
        self._changed = threading.Condition()

    @contextmanager
    def using(self, path: Path, index: VideoIndex, near: int = 0) -> Iterator[VideoReader]:
        """An open reader of ``path`` for this thread alone until the block ends, chosen
        for decoding frame ``near`` next."""
        reader = self._take(path, index, near)
        try:
            yield reader
        finally:
            self._give_back(reader)

    def _take(self, path: Path, index: VideoIndex, near: int) -> VideoReader:
        with self._changed:
            while True:
                for closed in [reader for reader in self._readers if reader.closed]:
                    if closed not in self._busy:
                        del self._readers[closed]
                ours = [reader for reader in self._readers if reader.path == path]
                idle = [reader for reader in ours if reader not in self._busy]
                continuing = [reader for reader in idle if reader.continues_to(near)]
                if continuing:
                    reader = min(continuing, key=lambda reader: reader.frames_to_decode(near))
                    break
                if len(ours) < self._per_video:  # a new one seeks; the others keep their place
                    reader = None
                    break
                if idle:
                    reader = idle[0]  # the least recently used
                    break
                self._changed.wait()
            if reader is not None:
                self._readers.move_to_end(reader)
                self._busy.add(reader)
                return reader
        reader = VideoReader(path, index)  # opening a file: outside the pool's lock
        with self._changed:
            self._readers[reader] = None
            self._busy.add(reader)
            self._close_idle_beyond_size()
        return reader

    def _give_back(self, reader: VideoReader) -> None:
        with self._changed:
            self._busy.discard(reader)
            if reader.closed or reader not in self._readers:  # forgotten while in use
                self._readers.pop(reader, None)
                reader.close()
            self._close_idle_beyond_size()
            self._changed.notify_all()

    def _close_idle_beyond_size(self) -> None:
        for reader in [reader for reader in self._readers if reader not in self._busy]:
            if len(self._readers) <= self._size:
                return
            del self._readers[reader]
            reader.close()

    def forget(self, path: Path) -> None:
        """Closes the readers of ``path`` (those in use when their request ends)."""
        with self._changed:
            for reader in [reader for reader in self._readers if reader.path == path]:
                del self._readers[reader]
                if reader not in self._busy:
                    reader.close()
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            for reader in list(self._readers):
                del self._readers[reader]
                if reader not in self._busy:
                    reader.close()
            self._changed.notify_all()
