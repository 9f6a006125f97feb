"""Frame results summed into job and task reports, in CVAT's report JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from workers.quality.comparison import FrameResult

COUNTS = ("valid_count", "missing_count", "extra_count", "total_count", "ds_count", "gt_count")


@dataclass
class Totals:
    """Sums over frames (or over jobs, for a task): counts, confusion matrix, conflicts.
    Frames can be taken out again, so a job's totals follow its frames edit by edit."""

    labels: list[str]
    frame_ious: dict[int, float] = field(default_factory=dict)  # frame -> its mean IoU
    confusion: np.ndarray | None = None
    counts: Counter[str] = field(default_factory=Counter)
    shape: Counter[str] = field(default_factory=Counter)
    label: Counter[str] = field(default_factory=Counter)
    conflicts: Counter[str] = field(default_factory=Counter)
    job_ious: list[float] = field(default_factory=list)  # a task's: each job's mean IoU

    @property
    def frames(self) -> list[int]:
        return sorted(self.frame_ious)

    def add_frame(self, frame: int, result: FrameResult) -> None:
        self._count(result, 1)
        self.frame_ious[frame] = result.shape["mean_iou"]

    def remove_frame(self, frame: int, result: FrameResult) -> None:
        self._count(result, -1)
        self.frame_ious.pop(frame, None)

    def _count(self, result: FrameResult, sign: int) -> None:
        self._add_matrix(result.confusion * sign)
        for name in COUNTS:
            self.counts[name] += sign * getattr(result, name)
        for name, value in result.shape.items():
            if name != "mean_iou":
                self.shape[name] += sign * int(value)
        for name, number in result.label.items():
            self.label[name] += sign * number
        for conflict in result.conflicts:
            self.conflicts[str(conflict["type"])] += sign
        self.conflicts = +self.conflicts  # drop types that reached zero

    def add_totals(self, other: Totals) -> None:
        """Adds a job's totals to a task's: frames joined, mean IoU averaged over jobs."""
        self.frame_ious.update(other.frame_ious)
        if other.confusion is not None:
            self._add_matrix(other.confusion)
        self.counts.update(other.counts)
        self.shape.update(other.shape)
        self.label.update(other.label)
        self.conflicts.update(other.conflicts)
        self.job_ious.append(other.mean_iou)

    def _add_matrix(self, matrix: np.ndarray) -> None:
        self.confusion = matrix.copy() if self.confusion is None else self.confusion + matrix

    @property
    def mean_iou(self) -> float:
        values = self.job_ious or list(self.frame_ious.values())
        return float(np.mean(values)) if values else 0.0

    @property
    def error_count(self) -> int:
        return sum(n for kind, n in self.conflicts.items() if kind in ERROR_TYPES)

    @property
    def conflict_count(self) -> int:
        return sum(self.conflicts.values())

    def matrix(self) -> np.ndarray:
        if self.confusion is None:
            size = len(self.labels) + 1
            return np.zeros((size, size), dtype=np.int64)
        return self.confusion

    def comparison_summary(self, total_frames: int) -> dict[str, object]:
        frame_count = len(self.frame_ious)
        frame_share = frame_count / (total_frames or 1)
        shape = {name: int(self.shape[name]) for name in COUNTS}
        label = {
            name: int(self.label[name]) for name in ("valid_count", "invalid_count", "total_count")
        }
        return {
            "frame_share": frame_share,
            "frames": self.frames,
            "total_frames": total_frames,
            "frame_count": frame_count,
            "mean_conflict_count": self.conflict_count / (frame_count or 1),
            "conflict_count": self.conflict_count,
            "warning_count": self.conflict_count - self.error_count,
            "error_count": self.error_count,
            "conflicts_by_type": dict(sorted(self.conflicts.items())),
            "annotations": annotations_json(self.counts, self.matrix(), self.labels),
            "annotation_components": {
                "shape": {
                    **shape,
                    "mean_iou": self.mean_iou,
                    "accuracy": shape["valid_count"] / (shape["total_count"] or 1),
                },
                "label": {**label, "accuracy": label["valid_count"] / (label["total_count"] or 1)},
            },
        }

    def report_summary(self, total_frames: int) -> dict[str, object]:
        """The `summary` of a QualityReport in CVAT's list and detail answers."""
        compared = self.comparison_summary(total_frames)
        annotations = compared["annotations"]
        assert isinstance(annotations, dict)
        return {
            "total_frames": total_frames,
            "validation_frames": compared["frame_count"],
            "validation_frame_share": compared["frame_share"],
            "frame_count": compared["frame_count"],
            "frame_share": compared["frame_share"],
            "conflict_count": compared["conflict_count"],
            "warning_count": compared["warning_count"],
            "error_count": compared["error_count"],
            "conflicts_by_type": compared["conflicts_by_type"],
            **{
                name: annotations[name]
                for name in ("valid_count", "ds_count", "gt_count", "total_count")
            },
            **{name: annotations[name] for name in ("accuracy", "precision", "recall")},
        }


ERROR_TYPES = frozenset({"missing_annotation", "extra_annotation", "mismatching_label"})


def annotations_json(
    counts: Counter[str] | dict[str, int], matrix: np.ndarray, labels: Sequence[str]
) -> dict[str, object]:
    valid, total = int(counts["valid_count"]), int(counts["total_count"])
    ds_count, gt_count = int(counts["ds_count"]), int(counts["gt_count"])
    return {
        **{name: int(counts[name]) for name in COUNTS},
        "confusion_matrix": confusion_json(matrix, labels),
        "accuracy": valid / (total or 1),
        "precision": valid / (ds_count or 1),
        "recall": valid / (gt_count or 1),
    }


def confusion_json(matrix: np.ndarray, labels: Sequence[str]) -> dict[str, object]:
    diagonal = np.diag(matrix).astype(float)
    rows = matrix.sum(axis=1).astype(float)  # ds
    cols = matrix.sum(axis=0).astype(float)  # gt
    total = float(matrix.sum())
    accuracy = (total - (rows - diagonal) - (cols - diagonal)) / (total or 1)
    return {
        "labels": [*labels, "unmatched"],
        "rows": matrix.tolist(),
        "precision": _divide(diagonal, rows).tolist(),
        "recall": _divide(diagonal, cols).tolist(),
        "accuracy": accuracy.tolist(),
        "jaccard_index": _divide(diagonal, rows + cols - diagonal).tolist(),
        "axes": {"cols": "gt", "rows": "ds"},
    }


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    divisor = b.copy()
    divisor[b == 0] = 1
    return a / divisor


def frame_json(result: FrameResult, labels: Sequence[str]) -> dict[str, object]:
    """One entry of a ComparisonReport's `frame_results`."""
    by_type = Counter(str(c["type"]) for c in result.conflicts)
    errors = sum(n for kind, n in by_type.items() if kind in ERROR_TYPES)
    counts = {name: getattr(result, name) for name in COUNTS}
    return {
        "conflicts": result.conflicts,
        "annotations": annotations_json(counts, result.confusion, labels),
        "annotation_components": {
            "shape": {
                **result.shape,
                "accuracy": result.shape["valid_count"] / (result.shape["total_count"] or 1),
            },
            "label": {
                **result.label,
                "accuracy": result.label["valid_count"] / (result.label["total_count"] or 1),
            },
        },
        "conflict_count": len(result.conflicts),
        "warning_count": len(result.conflicts) - errors,
        "error_count": errors,
        "conflicts_by_type": dict(sorted(by_type.items())),
    }


def job_totals(labels: list[str], results: Iterable[tuple[int, FrameResult]]) -> Totals:
    totals = Totals(labels)
    for frame, result in sorted(results, key=lambda pair: pair[0]):
        totals.add_frame(frame, result)
    return totals
