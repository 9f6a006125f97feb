"""The pool layout alone (no server): sizes, invariants and reproducibility."""

from __future__ import annotations

from collections import Counter

import pytest

from core.errors import ValidationFailed
from core.task_data import ValidationParams
from core.validation_layout import HoneypotSelector, lay_out_pool, rng_of

NAMES = [f"f{i}.jpg" for i in range(100)]


def pool(**fields: object) -> ValidationParams:
    base = {"mode": "gt_pool", "frame_selection_method": "random_uniform", "frame_count": 10,
            "frames_per_job_count": 3, "random_seed": 3}  # fmt: skip
    return ValidationParams(**{**base, **fields})  # type: ignore[arg-type]


def test_every_job_gets_its_honeypots_and_the_pool_ends_the_task() -> None:
    layout = lay_out_pool(NAMES, pool(), segment_size=20, seed=0)
    assert layout.job_sizes == [23, 23, 23, 23, 13]  # 90 frames by 20, 3 honeypots each
    assert sum(layout.job_sizes) + 10 == len(layout.images)
    assert layout.pool == list(range(len(layout.images) - 10, len(layout.images)))
    assert sorted(layout.images) == sorted([*range(100), *[layout.images[r] for r in
                                            layout.honeypot_real_frames]])  # fmt: skip
    starts = [sum(layout.job_sizes[:i]) for i in range(len(layout.job_sizes))]
    for start, size in zip(starts, layout.job_sizes, strict=True):
        mine = [r for f, r in zip(layout.honeypot_frames, layout.honeypot_real_frames,
                                  strict=True) if start <= f < start + size]  # fmt: skip
        assert len(mine) == 3 and len(set(mine)) == 3
    uses = Counter(layout.honeypot_real_frames)
    assert set(uses) == set(layout.pool)  # every pool frame used, as evenly as possible
    assert max(uses.values()) - min(uses.values()) <= 1


def test_the_same_seed_and_files_give_the_same_layout_in_any_upload_order() -> None:
    first = lay_out_pool(NAMES, pool(), 20, seed=1)
    shuffled = list(reversed(NAMES))
    second = lay_out_pool(shuffled, pool(), 20, seed=2)
    assert [NAMES[i] for i in first.images] == [shuffled[i] for i in second.images]
    assert first.honeypot_real_frames == second.honeypot_real_frames
    assert lay_out_pool(NAMES, pool(random_seed=4), 20, 1).images != first.images


def test_manual_pools_and_their_limits() -> None:
    chosen = ["f5.jpg", "f50.jpg", "f7.jpg"]
    layout = lay_out_pool(
        NAMES, pool(frame_selection_method="manual", frame_count=None, frames=chosen), 0, 1
    )
    assert [NAMES[layout.images[f]] for f in layout.pool] == ["f5.jpg", "f7.jpg", "f50.jpg"]
    assert layout.job_sizes == [97 + 3]
    with pytest.raises(ValidationFailed, match="frames"):
        lay_out_pool(NAMES, pool(frame_selection_method="manual", frames=["nope.jpg"]), 0, 1)
    with pytest.raises(ValidationFailed, match="frame_count"):
        lay_out_pool(NAMES, pool(frame_count=100), 0, 1)
    with pytest.raises(ValidationFailed, match="frames_per_job_count"):
        lay_out_pool(NAMES, pool(frames_per_job_count=11), 0, 1)
    share = lay_out_pool(NAMES, pool(frames_per_job_count=None, frames_per_job_share=0.25), 8, 1)
    assert share.frames_per_job_count == 2


def test_the_selector_takes_the_least_used_first() -> None:
    selector = HoneypotSelector({1: 2, 2: 0, 3: 0, 4: 1}, rng_of(0))
    assert sorted(selector.pick(2)) == [2, 3]
    assert selector.pick(1) == [4]  # 2, 3 and 4 tie at one use; 4 was there first
    assert sorted(selector.pick(3)) == [1, 2, 3]  # 2 and 3 (one use), then 1 (two)
