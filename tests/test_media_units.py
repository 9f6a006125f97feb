"""Media units: the cache (bounded in bytes, least recently used out, kept across restarts)
and the size of compressed video chunks."""

from __future__ import annotations

import io
import random
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from tests.videos import write_video
from workers.media.cache import MediaCache
from workers.media.chunks import compressed_size, encode_mp4, fit_frames
from workers.media.video import ReaderPool, VideoReader, index_video


def test_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path, max_bytes=300)
    made: list[str] = []

    def maker(key: str):
        def make() -> bytes:
            made.append(key)
            return key.encode().ljust(100, b".")

        return make

    for key in ("t1/a", "t1/b", "t1/c"):
        cache.get_or_make(key, maker(key))
    assert cache.get_or_make("t1/a", maker("t1/a")).startswith(b"t1/a")  # a is now newest
    cache.get_or_make("t1/d", maker("t1/d"))  # over 300 bytes: b goes
    assert cache.total_bytes == 300
    assert cache.get("t1/b") is None
    assert cache.get("t1/a") is not None and cache.get("t1/c") is not None
    assert made == ["t1/a", "t1/b", "t1/c", "t1/d"]
    assert (cache.hits, cache.misses) == (3, 4)
    assert len(list(tmp_path.glob("*.bin"))) == 3


def test_cache_survives_a_restart_and_drops_one_owner(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path, max_bytes=10_000)
    cache.get_or_make("t1/a", lambda: b"one")
    cache.get_or_make("t2/a", lambda: b"two")
    again = MediaCache(tmp_path, max_bytes=10_000)
    assert again.get("t1/a") == b"one"
    again.drop_prefix("t1")
    assert again.get("t1/a") is None
    assert again.get("t2/a") == b"two"
    assert again.total_bytes == 3


def test_entry_larger_than_the_cache_is_served_not_kept(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path, max_bytes=10)
    assert cache.get_or_make("t1/big", lambda: b"x" * 11) == b"x" * 11
    assert cache.get("t1/big") is None
    assert cache.total_bytes == 0


def test_concurrent_misses_make_an_entry_once(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path, max_bytes=10_000)
    calls: list[int] = []
    started, gate = threading.Event(), threading.Event()

    def slow() -> bytes:
        calls.append(1)
        started.set()
        gate.wait(5)
        return b"made"

    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_make("t1/x", slow)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    assert started.wait(5)
    gate.set()
    for thread in threads:
        thread.join()
    assert results == [b"made"] * 4
    assert calls == [1]


def test_compressed_video_chunks_are_halved_from_1080_up() -> None:
    assert compressed_size(1920, 1080) == (960, 540)
    assert compressed_size(3840, 2160) == (960, 540)
    assert compressed_size(1280, 720) == (1280, 720)
    assert compressed_size(1920, 1079) == (1920, 1079)


def test_reader_pool_replaces_a_reader_evicted_while_waiting(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    reference = write_video(path, frames=12, keyint=5)
    index = index_video(path)
    pool = ReaderPool(size=1)
    with pool.using(path, index) as first:
        assert np.array_equal(first.frame(7), reference[7])
    first.close()  # as an eviction by another thread would
    with pool.using(path, index) as second:
        assert second is not first
        assert np.array_equal(second.frame(3), reference[3])
        assert np.array_equal(second.frame(11), reference[11])
    other = tmp_path / "other.mp4"
    write_video(other, frames=3)
    with pool.using(other, index_video(other)):
        pass
    assert second.closed  # the pool holds one reader: the older one was closed
    pool.close()


def test_reader_gives_exact_frames_in_any_order_from_a_video_with_b_frames(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bframes.mp4"
    reference = write_video(path, width=96, height=64, frames=120, keyint=40)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.has_b_frames
    reader = VideoReader(path, index_video(path))
    order = list(range(120))
    random.Random(3).shuffle(order)
    assert [n for n in order if not np.array_equal(reader.frame(n), reference[n])] == []
    for first, last, step in [(10, 45, 1), (39, 100, 3), (0, 119, 1), (79, 79, 1)]:
        frames = list(reader.frames(first, last, step))
        expected = reference[first : last + 1 : step]
        assert len(frames) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
    reader.close()


def test_video_chunks_are_timed_at_25_fps_and_leave_their_frames_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, frames=10, keyint=5)
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    frames = fit_frames(decoded, 64, 48, quality="original")
    before = [(frame.pts, frame.duration, frame.time_base) for frame in frames]
    for quality in ("original", "compressed"):  # both encoders read the same frames
        chunk = encode_mp4(frames, 64, 48, quality=quality, image_quality=70)
        with av.open(io.BytesIO(chunk)) as container:
            times = [frame.time for frame in container.decode(video=0)]
        assert times == pytest.approx([n / 25 for n in range(10)])
    assert [(frame.pts, frame.duration, frame.time_base) for frame in frames] == before


def test_reader_pool_keeps_readers_where_they_stopped(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    reference = write_video(path, frames=60, keyint=20)
    index = index_video(path)
    pool = ReaderPool(size=4, per_video=2)
    with pool.using(path, index, near=5) as first:
        assert np.array_equal(first.frame(5), reference[5])
    with pool.using(path, index, near=45) as second:  # another group: a reader of its own
        assert second is not first
        assert np.array_equal(second.frame(45), reference[45])
    with pool.using(path, index, near=9) as reader:  # continues from frame 5
        assert reader is first and reader.frames_to_decode(9) == 4
        assert np.array_equal(reader.frame(9), reference[9])
    with pool.using(path, index, near=50) as reader:
        assert reader is second
    with pool.using(path, index, near=25) as reader:  # both would seek: the older one does
        assert reader is first
        assert np.array_equal(reader.frame(25), reference[25])
    with pool.using(path, index, near=3) as busy, pool.using(path, index, near=4) as other:
        assert {busy, other} == {first, second}
    pool.forget(path)
    assert first.closed and second.closed
    pool.close()
