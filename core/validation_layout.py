"""Where a task's validation frames go, decided once when its data is attached (CVAT's
`_create_thread` with `validation_params`) or when its honeypots are drawn again.

Pure arithmetic on frame numbers. The random choices follow CVAT's steps with numpy's
MT19937, so the same seed lays a task out as CVAT would; whatever is drawn is written into
the event, so a replay never draws again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
from natsort import os_sorted

from core.errors import ValidationFailed
from core.task_data import ValidationParams


@dataclass(frozen=True)
class PoolLayout:
    """A "gt_pool" task: its frames in task order (each the index of an input image), its
    jobs' sizes, its pool (task frames at the end) and each honeypot's pool frame."""

    images: list[int]
    job_sizes: list[int]
    pool: list[int]
    honeypot_frames: list[int]
    honeypot_real_frames: list[int]
    frames_per_job_count: int


def rng_of(seed: int | None) -> np.random.Generator:
    return np.random.Generator(np.random.MT19937(seed))


def lay_out_pool(
    names: Sequence[str], params: ValidationParams, segment_size: int, seed: int
) -> PoolLayout:
    """Takes the validation pool out of the images named `names`, cuts the rest into jobs of
    `segment_size` (0: one job) and mixes `frames_per_job_count` pool frames into each."""
    random_seed = params.random_seed if params.random_seed is not None else seed
    rng = rng_of(random_seed)
    position = {name: index for index, name in enumerate(names)}
    natural = [position[name] for name in os_sorted(names)]  # CVAT sorts before choosing
    count = len(natural)
    pool = sorted(_pool_positions(params, [names[i] for i in natural], rng))
    if count - len(pool) < 1:
        _refuse("frames", "too few non-honeypot frames left after selecting validation frames")
    per_job = _honeypots_per_job(params, len(pool), segment_size)
    regular = sorted(set(range(count)) - set(pool))
    rng.shuffle(regular)
    selector = HoneypotSelector(dict.fromkeys(pool, 0), rng)
    ordering = rng_of(random_seed)  # a separate generator orders each job, as in CVAT
    order: list[int] = []  # positions (in natural order) of the task's frames
    honeypots: list[tuple[int, int]] = []  # (task frame, position of its pool frame)
    job_sizes = []
    chunk = segment_size or count
    for start in range(0, len(regular), chunk):
        picked = selector.pick(per_job)
        job = [*regular[start : start + chunk], *picked]
        ordering.shuffle(job)
        chosen = set(picked)
        for position in job:
            if position in chosen:
                honeypots.append((len(order), position))
            order.append(position)
        job_sizes.append(len(job))
    pool_frame = {position: len(order) + i for i, position in enumerate(pool)}
    order += pool
    return PoolLayout(
        images=[natural[position] for position in order],
        job_sizes=job_sizes,
        pool=[pool_frame[position] for position in pool],
        honeypot_frames=[frame for frame, _ in honeypots],
        honeypot_real_frames=[pool_frame[position] for _, position in honeypots],
        frames_per_job_count=per_job,
    )


class PoolPlacement(msgspec.Struct):
    """A pool task's layout as a backup carries it (CVAT's job files): each annotation job's
    files in frame order, a honeypot named by the pool file it shows, and the pool's files
    in the ground truth job's order."""

    jobs: list[list[str]]
    pool: list[str]
    frames_per_job_count: int


def placed_pool(names: Sequence[str], placement: PoolPlacement) -> PoolLayout:
    """The layout `placement` gives the images named `names` (nothing is drawn)."""
    order = [name for job in placement.jobs for name in job]
    images = frames_named([*order, *placement.pool], names)
    pool_frame = {name: len(order) + i for i, name in enumerate(placement.pool)}
    honeypots = [(f, pool_frame[name]) for f, name in enumerate(order) if name in pool_frame]
    return PoolLayout(
        images=images,
        job_sizes=[len(job) for job in placement.jobs],
        pool=list(pool_frame.values()),
        honeypot_frames=[frame for frame, _ in honeypots],
        honeypot_real_frames=[real for _, real in honeypots],
        frames_per_job_count=placement.frames_per_job_count,
    )


def _pool_positions(
    params: ValidationParams, names: list[str], rng: np.random.Generator
) -> list[int]:
    count = len(names)
    if params.frame_selection_method == "manual":
        return frames_named(params.frames or [], names)
    if params.frame_count is not None:
        if count <= params.frame_count:
            _refuse(
                "frame_count",
                f"The number of validation frames requested ({params.frame_count}) "
                f"must be less than the number of task frames ({count})",
            )
        wanted = params.frame_count
    else:
        wanted = max(1, int(count * (params.frame_share or 0)))
    return [int(f) for f in rng.choice(range(count), size=wanted, shuffle=False, replace=False)]


def _honeypots_per_job(params: ValidationParams, pool_size: int, segment_size: int) -> int:
    if params.frames_per_job_count is not None:
        if pool_size < params.frames_per_job_count and params.frame_count is not None:
            _refuse(
                "frames_per_job_count",
                f"The requested number of validation frames per job "
                f"({params.frames_per_job_count}) is greater than the validation pool size "
                f"({pool_size})",
            )
        wanted = params.frames_per_job_count
    else:
        wanted = max(1, int((params.frames_per_job_share or 0) * segment_size))
    return min(pool_size, wanted)


def frames_named(wanted: Iterable[str], names: Sequence[str]) -> list[int]:
    """The frame numbers of the files `wanted` among the task's frame `names`."""
    known = {name: frame for frame, name in enumerate(names)}
    unknown = sorted(name for name in wanted if name not in known)
    if unknown:
        _refuse("frames", f"Unknown validation frames requested: {', '.join(unknown[:10])}")
    return [known[name] for name in wanted]


def _refuse(field: str, reason: str) -> None:
    raise ValidationFailed.one(f"validation_params.{field}", reason)


class HoneypotSelector:
    """Picks validation frames for honeypots: the least used first, ties in a random order
    drawn once, never the same frame twice in one pick (CVAT's HoneypotFrameSelector: every
    pool frame gets used, and as evenly as the counts allow)."""

    def __init__(self, use_counts: dict[int, int], rng: np.random.Generator) -> None:
        bags: dict[int, dict[int, None]] = {}
        for frame, uses in use_counts.items():
            bags.setdefault(uses, {})[frame] = None
        self._bags = dict(sorted(bags.items()))
        for uses, bag in self._bags.items():
            members = list(bag)
            rng.shuffle(members)
            self._bags[uses] = dict.fromkeys(members)

    def pick(self, count: int) -> list[int]:
        taken = [
            (frame, uses)
            for _, (uses, frame) in zip(range(count), self._in_use_order(), strict=False)
        ]
        for frame, uses in taken:
            bag = self._bags[uses]
            del bag[frame]
            if not bag:
                del self._bags[uses]
            self._bags.setdefault(uses + 1, {})[frame] = None
        return [frame for frame, _ in taken]

    def _in_use_order(self) -> Iterable[tuple[int, int]]:
        for uses, bag in self._bags.items():
            for frame in bag:
                yield uses, frame
