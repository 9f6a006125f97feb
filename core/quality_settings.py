"""Quality settings of a task: how its jobs are compared with its ground truth (CVAT's fields)."""

from __future__ import annotations

from typing import Literal

import msgspec

from core.errors import ErrorCollector

TargetMetric = Literal["accuracy", "precision", "recall"]
PointSizeBase = Literal["image_size", "group_bbox_size"]
UNSET = msgspec.UNSET

UNIT_FIELDS = (
    "iou_threshold",
    "oks_sigma",
    "line_thickness",
    "low_overlap_threshold",
    "line_orientation_threshold",
    "group_match_threshold",
    "object_visibility_threshold",
    "target_metric_threshold",
)


class QualitySettings(msgspec.Struct, frozen=True):
    iou_threshold: float = 0.4
    oks_sigma: float = 0.09
    point_size_base: PointSizeBase = "group_bbox_size"
    line_thickness: float = 0.01
    low_overlap_threshold: float = 0.8
    compare_line_orientation: bool = True
    line_orientation_threshold: float = 0.1
    compare_groups: bool = True
    group_match_threshold: float = 0.5
    check_covered_annotations: bool = True
    object_visibility_threshold: float = 0.05
    panoptic_comparison: bool = True
    compare_attributes: bool = True
    empty_is_annotated: bool = False
    target_metric: TargetMetric = "accuracy"
    target_metric_threshold: float = 0.7
    max_validations_per_job: int = 0
    inherit: bool = True
    job_filter: str = ""


class QualitySettingsPatch(msgspec.Struct, forbid_unknown_fields=False):
    iou_threshold: float | msgspec.UnsetType = UNSET
    oks_sigma: float | msgspec.UnsetType = UNSET
    point_size_base: PointSizeBase | msgspec.UnsetType = UNSET
    line_thickness: float | msgspec.UnsetType = UNSET
    low_overlap_threshold: float | msgspec.UnsetType = UNSET
    compare_line_orientation: bool | msgspec.UnsetType = UNSET
    line_orientation_threshold: float | msgspec.UnsetType = UNSET
    compare_groups: bool | msgspec.UnsetType = UNSET
    group_match_threshold: float | msgspec.UnsetType = UNSET
    check_covered_annotations: bool | msgspec.UnsetType = UNSET
    object_visibility_threshold: float | msgspec.UnsetType = UNSET
    panoptic_comparison: bool | msgspec.UnsetType = UNSET
    compare_attributes: bool | msgspec.UnsetType = UNSET
    empty_is_annotated: bool | msgspec.UnsetType = UNSET
    target_metric: TargetMetric | msgspec.UnsetType = UNSET
    target_metric_threshold: float | msgspec.UnsetType = UNSET
    max_validations_per_job: int | msgspec.UnsetType = UNSET
    inherit: bool | msgspec.UnsetType = UNSET
    job_filter: str | msgspec.UnsetType = UNSET

    def changes(self) -> dict[str, object]:
        """The fields sent, checked: thresholds in [0, 1], counts not negative."""
        sent = {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if getattr(self, name) is not UNSET
        }
        errors = ErrorCollector()
        for name in UNIT_FIELDS:
            if name in sent and not 0 <= float(sent[name]) <= 1:  # type: ignore[arg-type]
                errors.add(name, "Ensure this value is between 0 and 1.")
        if sent.get("max_validations_per_job", 0) < 0:  # type: ignore[operator]
            errors.add("max_validations_per_job", "Ensure this value is at least 0.")
        errors.raise_if_any()
        return sent
