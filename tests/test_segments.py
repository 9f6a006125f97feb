"""Tests for core.segments: job segmenting, file ordering, chunk size, frame selection."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core import segments
from core.segments import (
    default_chunk_size,
    frame_range,
    order_files,
    parse_frame_filter,
    segment_params,
    segment_ranges,
)

# --- segment_ranges -------------------------------------------------------------------------


def test_segments_without_overlap() -> None:
    assert segment_ranges(10, 4, 0) == [(0, 3), (4, 7), (8, 9)]


def test_segments_default_overlap_for_images_is_zero() -> None:
    assert segment_ranges(10, 4, None) == [(0, 3), (4, 7), (8, 9)]


def test_segments_with_overlap_follow_cvat_formula() -> None:
    size, seg, overlap = 10, 4, 1
    expected = [
        (start, min(start + seg - 1, size - 1)) for start in range(0, size - overlap, seg - overlap)
    ]
    assert segment_ranges(size, seg, overlap) == expected
    assert expected == [(0, 3), (3, 6), (6, 9)]


@pytest.mark.parametrize("segment_size", [0, None, 11, 1000])
def test_one_job_when_segment_size_unset_or_too_big(segment_size: int | None) -> None:
    assert segment_ranges(10, segment_size, None) == [(0, 9)]
    assert segment_params(10, segment_size, None) == (10, 0)


def test_segment_size_equal_to_size_is_one_job() -> None:
    assert segment_ranges(10, 10, 0) == [(0, 9)]


def test_video_default_overlap_is_five() -> None:
    assert segment_params(100, 20, None, is_video=True) == (20, 5)
    ranges = segment_ranges(100, 20, None, is_video=True)
    assert ranges[:3] == [(0, 19), (15, 34), (30, 49)]
    assert ranges[-1][1] == 99


def test_video_default_overlap_capped_at_half_segment() -> None:
    assert segment_params(10, 4, None, is_video=True) == (4, 2)
    assert segment_ranges(10, 4, None, is_video=True) == [(0, 3), (2, 5), (4, 7), (6, 9)]


def test_explicit_overlap_capped_at_half_segment() -> None:
    assert segment_params(10, 4, 3) == (4, 2)


def test_video_one_job_overlap_is_capped_by_whole_size() -> None:
    assert segment_params(3, 0, None, is_video=True) == (3, 1)
    assert segment_ranges(3, 0, None, is_video=True) == [(0, 2)]


def test_segment_ranges_cover_every_frame() -> None:
    for size in range(1, 30):
        for seg in range(0, size + 2):
            for overlap in (None, 0, 1, 2, 5):
                ranges = segment_ranges(size, seg, overlap, is_video=True)
                covered = {f for start, stop in ranges for f in range(start, stop + 1)}
                assert covered == set(range(size)), (size, seg, overlap)
                assert ranges[0][0] == 0 and ranges[-1][1] == size - 1


def test_single_frame_segments() -> None:
    assert segment_ranges(3, 1, 0) == [(0, 0), (1, 1), (2, 2)]


def test_empty_task_has_no_segments() -> None:
    assert segment_ranges(0, 5, None) == []


def test_negative_segment_arguments_rejected() -> None:
    with pytest.raises(ValueError):
        segment_ranges(10, -1, 0)
    with pytest.raises(ValueError):
        segment_ranges(10, 4, -1)


# --- order_files ----------------------------------------------------------------------------

NAMES = ["img10.jpg", "img2.jpg", "b/img1.jpg", "IMG3.jpg", "img1.jpg"]


def test_lexicographical_is_plain_sorted() -> None:
    assert order_files(NAMES, "lexicographical") == sorted(NAMES)
    assert order_files(["img2.jpg", "img10.jpg"], "lexicographical") == ["img10.jpg", "img2.jpg"]


def test_natural_puts_img2_before_img10() -> None:
    ordered = order_files(NAMES, "natural")
    assert ordered.index("img2.jpg") < ordered.index("img10.jpg")
    assert order_files(["img10.jpg", "img2.jpg", "img1.jpg"], "natural") == [
        "img1.jpg",
        "img2.jpg",
        "img10.jpg",
    ]


def test_predefined_keeps_given_order() -> None:
    assert order_files(NAMES, "predefined") == NAMES


def test_predefined_uses_upload_order() -> None:
    upload_order = ["img1.jpg", "IMG3.jpg", "b/img1.jpg", "img10.jpg", "img2.jpg"]
    assert order_files(NAMES, "predefined", upload_order=upload_order) == upload_order


def test_predefined_upload_order_must_match_files() -> None:
    with pytest.raises(ValueError, match="upload_file_order"):
        order_files(["a.jpg", "b.jpg"], "predefined", upload_order=["a.jpg", "c.jpg"])
    with pytest.raises(ValueError, match="upload_file_order"):
        order_files(["a.jpg", "b.jpg"], "predefined", upload_order=["a.jpg"])


def test_random_is_reproducible_with_seed() -> None:
    names = [f"img{i}.jpg" for i in range(50)]
    first = order_files(names, "random", seed=42)
    assert first == order_files(names, "random", seed=42)
    assert sorted(first) == sorted(names)
    assert first != names
    assert order_files(names, "random", seed=43) != first


def test_order_files_does_not_mutate_input() -> None:
    names = [f"img{i}.jpg" for i in range(10)]
    snapshot = list(names)
    for method in ("lexicographical", "natural", "predefined", "random"):
        order_files(names, method, seed=1)  # type: ignore[arg-type]
    assert names == snapshot


def test_unknown_sorting_method() -> None:
    with pytest.raises(ValueError, match="sorting method"):
        order_files(NAMES, "alphabetical")  # type: ignore[arg-type]


# --- default_chunk_size ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1920, 1080, 36),
        (3840, 2160, 9),
        (640, 480, 72),
        (100, 100, 72),
        (20000, 20000, 2),
        (1280, 720, 72),
        (2560, 1440, 20),
    ],
)
def test_default_chunk_size(width: int, height: int, expected: int) -> None:
    assert default_chunk_size(width, height) == expected


def test_default_chunk_size_rejects_empty_frames() -> None:
    with pytest.raises(ValueError):
        default_chunk_size(0, 100)


# --- frame_range ----------------------------------------------------------------------------


def test_frame_range_defaults_keep_everything() -> None:
    assert frame_range(5, 0, None, 1) == [0, 1, 2, 3, 4]


def test_frame_range_start_stop_step() -> None:
    assert frame_range(10, 2, 7, 2) == [2, 4, 6]
    assert frame_range(10, 1, None, 3) == [1, 4, 7]


def test_frame_range_stop_clamped_to_last_frame() -> None:
    assert frame_range(5, 3, 100, 1) == [3, 4]


def test_frame_range_stop_zero_means_end_like_cvat() -> None:
    assert frame_range(4, 0, 0, 1) == [0, 1, 2, 3]


def test_frame_range_single_frame() -> None:
    assert frame_range(5, 2, 2, 1) == [2]


@pytest.mark.parametrize(
    ("count", "start", "stop", "step"),
    [(0, 0, None, 1), (5, 5, None, 1), (5, 3, 2, 1), (5, 0, None, 0), (5, -1, None, 1)],
)
def test_frame_range_rejects_bad_selection(
    count: int, start: int, stop: int | None, step: int
) -> None:
    with pytest.raises(ValueError):
        frame_range(count, start, stop, step)


# --- parse_frame_filter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "step"),
    [("", 1), ("step=1", 1), ("step=3", 3), ("step = 12", 12), (" step=2 ", 2)],
)
def test_parse_frame_filter(text: str, step: int) -> None:
    assert parse_frame_filter(text) == step


@pytest.mark.parametrize(
    "text", ["step=0", "step=-1", "step=", "stride=2", "step=2x", "2", "step=02", "step=1.5"]
)
def test_parse_frame_filter_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match="frame_filter"):
        parse_frame_filter(text)


# --- purity ---------------------------------------------------------------------------------


def test_core_segments_imports_no_io_library() -> None:
    tree = ast.parse(Path(segments.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "random", "re", "collections", "typing", "natsort"}
