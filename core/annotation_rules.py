"""What makes an annotation valid: labels, shape types, points, frames, attributes, masks.

`AnnotationRules` is built from a job's labels and frames; `check` returns the data with
defaults filled, or raises ValidationFailed naming every bad field by its path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from core.annotations import (
    SHAPE_TYPES,
    SOURCES,
    AttributeValue,
    LabeledData,
    Shape,
    Tag,
    Track,
    TrackedShape,
)
from core.errors import ErrorCollector
from core.labels import AttributeSpec, LabelSpec

MAX_ATTRIBUTE_VALUE = 4096
FIXED_POINT_COUNTS = {"rectangle": 4, "ellipse": 4, "cuboid": 16}
MIN_POINT_COUNTS = {"polygon": 6, "polyline": 4, "points": 2, "mask": 5}


@dataclass(frozen=True)
class AnnotationRules:
    labels: dict[int, LabelSpec]  # top-level labels by id
    sublabels: dict[int, LabelSpec]  # skeleton nodes by id
    parents: dict[int, int]  # sublabel id -> skeleton label id
    first_frame: int
    last_frame: int
    deleted_frames: frozenset[int]
    tracks_allowed: bool = True  # a honeypot task takes tags and shapes only (CVAT's rule)

    @classmethod
    def build(
        cls,
        labels: Sequence[LabelSpec],
        first_frame: int,
        last_frame: int,
        deleted_frames: Sequence[int] = (),
        tracks_allowed: bool = True,
    ) -> AnnotationRules:
        sublabels = {sub.id: sub for label in labels for sub in label.sublabels}
        parents = {sub.id: label.id for label in labels for sub in label.sublabels}
        return cls(
            {label.id: label for label in labels},
            sublabels,
            parents,
            first_frame,
            last_frame,
            frozenset(deleted_frames),
            tracks_allowed,
        )

    def check(self, data: LabeledData) -> LabeledData:
        errors = ErrorCollector()
        tags = [self._tag(t, f"tags[{i}]", errors) for i, t in enumerate(data.tags)]
        shapes = [self._shape(s, f"shapes[{i}]", errors) for i, s in enumerate(data.shapes)]
        tracks = [self._track(t, f"tracks[{i}]", errors) for i, t in enumerate(data.tracks)]
        if data.tracks and not self.tracks_allowed:
            errors.add("tracks", 'Tracks are not supported when task validation mode is "gt_pool"')
        errors.raise_if_any()
        return LabeledData(version=data.version, tags=tags, shapes=shapes, tracks=tracks)

    # Objects

    def _tag(self, tag: Tag, where: str, errors: ErrorCollector) -> Tag:
        label = self._label(tag.label_id, where, errors)
        if label is not None and label.type not in ("any", "tag"):
            errors.add(f"{where}.label_id", f"label {label.name!r} is for {label.type} shapes")
        self._frame(tag.frame, where, errors)
        self._common(tag.group, tag.source, where, errors)
        if label is not None:
            self._attributes(tag.attributes, label, f"{where}.attributes", errors)
        return msgspec.structs.replace(tag, group=tag.group or 0)

    def _shape(self, shape: Shape, where: str, errors: ErrorCollector) -> Shape:
        label = self._label(shape.label_id, where, errors)
        self._shape_type(shape.type, label, where, errors)
        self._frame(shape.frame, where, errors)
        self._geometry(shape.type, shape.points, shape.rotation, where, errors)
        self._common(shape.group, shape.source, where, errors)
        if not 0 <= shape.score <= 1 or not math.isfinite(shape.score):
            errors.add(f"{where}.score", "must be between 0 and 1")
        if label is not None:
            self._attributes(shape.attributes, label, f"{where}.attributes", errors)
        elements = self._shape_elements(shape, label, where, errors)
        if shape.group is not None and not elements and not shape.elements:
            return shape  # nothing to fill in
        return msgspec.structs.replace(shape, group=shape.group or 0, elements=elements)

    def _shape_elements(
        self, shape: Shape, label: LabelSpec | None, where: str, errors: ErrorCollector
    ) -> list[Shape]:
        if shape.type != "skeleton":
            if shape.elements:
                errors.add(f"{where}.elements", "only a skeleton has elements")
            return []
        if not shape.elements:
            errors.add(f"{where}.elements", "a skeleton needs its elements (one per node)")
            return []
        elements = []
        seen: set[int] = set()
        for index, element in enumerate(shape.elements):
            at = f"{where}.elements[{index}]"
            self._element_label(element.label_id, label, seen, at, errors)
            if element.type != "points":
                errors.add(f"{at}.type", "a skeleton element is of type points")
            elif len(element.points) != 2:
                errors.add(f"{at}.points", "a skeleton element has exactly one point (2 numbers)")
            self._finite(element.points, at, errors)
            sublabel = self.sublabels.get(element.label_id)
            if sublabel is not None:
                self._attributes(element.attributes, sublabel, f"{at}.attributes", errors)
            elements.append(
                msgspec.structs.replace(
                    element, frame=shape.frame, group=element.group or 0, elements=[]
                )
            )
        return elements

    def _track(self, track: Track, where: str, errors: ErrorCollector) -> Track:
        label = self._label(track.label_id, where, errors)
        self._common(track.group, track.source, where, errors)
        if label is not None:
            self._attributes(track.attributes, label, f"{where}.attributes", errors)
        shapes = self._tracked_shapes(track.shapes, label, where, errors)
        elements = self._track_elements(track, label, where, errors)
        first = min((s.frame for s in shapes), default=track.frame)
        return msgspec.structs.replace(
            track, frame=first, group=track.group or 0, shapes=shapes, elements=elements
        )

    def _tracked_shapes(
        self,
        shapes: list[TrackedShape],
        label: LabelSpec | None,
        where: str,
        errors: ErrorCollector,
    ) -> list[TrackedShape]:
        if not shapes:
            errors.add(f"{where}.shapes", "a track needs at least one shape")
            return []
        frames: set[int] = set()
        for index, shape in enumerate(shapes):
            at = f"{where}.shapes[{index}]"
            self._shape_type(shape.type, label, at, errors)
            if shape.type != shapes[0].type:
                errors.add(f"{at}.type", "all shapes of a track have the same type")
            if shape.frame in frames:
                errors.add(f"{at}.frame", f"the track has two shapes on frame {shape.frame}")
            frames.add(shape.frame)
            # A track runs across frames: its keyframes may sit on deleted ones (a client
            # sends the whole track back when it changes any part of it).
            self._frame(shape.frame, at, errors, deleted_allowed=True)
            if shape.type != "skeleton":
                self._geometry(shape.type, shape.points, shape.rotation, at, errors)
            if label is not None:
                self._attributes(shape.attributes, label, f"{at}.attributes", errors)
        return sorted(shapes, key=lambda s: s.frame)

    def _track_elements(
        self, track: Track, label: LabelSpec | None, where: str, errors: ErrorCollector
    ) -> list[Track]:
        is_skeleton = label is not None and label.type == "skeleton"
        if not is_skeleton:
            if track.elements:
                errors.add(f"{where}.elements", "only a skeleton track has elements")
            return []
        seen: set[int] = set()
        elements = []
        for index, element in enumerate(track.elements):
            at = f"{where}.elements[{index}]"
            self._element_label(element.label_id, label, seen, at, errors)
            sublabel = self.sublabels.get(element.label_id)
            shapes = self._tracked_shapes(element.shapes, sublabel, at, errors)
            first = min((s.frame for s in shapes), default=element.frame)
            elements.append(
                msgspec.structs.replace(
                    element, frame=first, group=element.group or 0, shapes=shapes, elements=[]
                )
            )
        if not elements:
            errors.add(f"{where}.elements", "a skeleton track needs its elements")
        return elements

    # Fields

    def _label(self, label_id: int, where: str, errors: ErrorCollector) -> LabelSpec | None:
        label = self.labels.get(label_id)
        if label is None:
            errors.add(f"{where}.label_id", f"label {label_id} is not a label of this job")
        return label

    def _element_label(
        self,
        label_id: int,
        skeleton: LabelSpec | None,
        seen: set[int],
        where: str,
        errors: ErrorCollector,
    ) -> None:
        if skeleton is None:
            return
        if self.parents.get(label_id) != skeleton.id:
            errors.add(f"{where}.label_id", f"{label_id} is not a node of {skeleton.name!r}")
        elif label_id in seen:
            errors.add(f"{where}.label_id", f"node {label_id} appears twice")
        seen.add(label_id)

    def _shape_type(
        self, shape_type: str, label: LabelSpec | None, where: str, errors: ErrorCollector
    ) -> None:
        if shape_type not in SHAPE_TYPES:
            errors.add(f"{where}.type", f"{shape_type!r} is not one of {', '.join(SHAPE_TYPES)}")
            return
        if label is None:
            return
        if label.type == "skeleton" and shape_type != "skeleton":
            errors.add(f"{where}.type", f"label {label.name!r} is a skeleton")
        elif label.type not in ("any", shape_type) and label.type != "skeleton":
            errors.add(f"{where}.type", f"label {label.name!r} is for {label.type} shapes only")
        elif shape_type == "skeleton" and label.type != "skeleton":
            errors.add(f"{where}.type", f"label {label.name!r} is not a skeleton")

    def _frame(
        self, frame: int, where: str, errors: ErrorCollector, *, deleted_allowed: bool = False
    ) -> None:
        if not self.first_frame <= frame <= self.last_frame:
            errors.add(
                f"{where}.frame", f"frame {frame} is outside {self.first_frame}..{self.last_frame}"
            )
        elif frame in self.deleted_frames and not deleted_allowed:
            errors.add(f"{where}.frame", f"frame {frame} is deleted")

    def _geometry(
        self,
        shape_type: str,
        points: list[float],
        rotation: float,
        where: str,
        errors: ErrorCollector,
    ) -> None:
        if not math.isfinite(rotation) or not 0 <= rotation <= 360:
            errors.add(f"{where}.rotation", "must be between 0 and 360")
        if not self._finite(points, where, errors):
            return
        count = len(points)
        if shape_type in FIXED_POINT_COUNTS and count != FIXED_POINT_COUNTS[shape_type]:
            errors.add(
                f"{where}.points", f"a {shape_type} has {FIXED_POINT_COUNTS[shape_type]} numbers"
            )
        elif shape_type in MIN_POINT_COUNTS and count < MIN_POINT_COUNTS[shape_type]:
            errors.add(
                f"{where}.points",
                f"a {shape_type} needs at least {MIN_POINT_COUNTS[shape_type]} numbers",
            )
        elif shape_type in ("polygon", "polyline", "points") and count % 2:
            errors.add(f"{where}.points", "points come in x, y pairs")
        elif shape_type == "skeleton" and points:
            errors.add(f"{where}.points", "a skeleton's points are in its elements")
        elif shape_type == "mask":
            self._mask(points, where, errors)

    def _mask(self, points: list[float], where: str, errors: ErrorCollector) -> None:
        *rle, left, top, right, bottom = points
        if min(points) < 0 or not all(map(float.is_integer, map(float, points))):
            errors.add(f"{where}.points", "a mask's run lengths and box are whole numbers >= 0")
        elif right < left or bottom < top:
            errors.add(f"{where}.points", "a mask's box has right >= left and bottom >= top")
        elif sum(rle) != (right - left + 1) * (bottom - top + 1):
            errors.add(
                f"{where}.points",
                f"the mask's runs cover {int(sum(rle))} pixels but its box holds "
                f"{int((right - left + 1) * (bottom - top + 1))}",
            )

    @staticmethod
    def _finite(points: list[float], where: str, errors: ErrorCollector) -> bool:
        total = sum(points)
        if total - total == 0 or all(map(math.isfinite, points)):  # a finite sum: all finite
            return True
        errors.add(f"{where}.points", "every coordinate must be a finite number")
        return False

    @staticmethod
    def _common(group: int | None, source: str, where: str, errors: ErrorCollector) -> None:
        if group is not None and group < 0:
            errors.add(f"{where}.group", "must be 0 or more")
        if source not in SOURCES:
            errors.add(f"{where}.source", f"{source!r} is not one of {', '.join(SOURCES)}")

    def _attributes(
        self,
        values: list[AttributeValue],
        label: LabelSpec,
        where: str,
        errors: ErrorCollector,
    ) -> None:
        if not values:
            return
        specs = {spec.id: spec for spec in label.attributes}
        seen: set[int] = set()
        for index, value in enumerate(values):
            at = f"{where}[{index}]"
            spec = specs.get(value.spec_id)
            if spec is None:
                errors.add(
                    f"{at}.spec_id", f"{value.spec_id} is not an attribute of {label.name!r}"
                )
                continue
            if value.spec_id in seen:
                errors.add(f"{at}.spec_id", f"attribute {spec.name!r} is given twice")
            seen.add(value.spec_id)
            problem = attribute_value_problem(spec, value.value)
            if problem:
                errors.add(f"{at}.value", problem)


def attribute_value_problem(spec: AttributeSpec, value: str) -> str | None:
    """Why `value` is not legal for `spec`, or None."""
    if len(value) > MAX_ATTRIBUTE_VALUE:
        return f"at most {MAX_ATTRIBUTE_VALUE} characters"
    if spec.input_type in ("select", "radio") and value not in spec.values:
        return f"{value!r} is not one of {', '.join(spec.values)}"
    if spec.input_type == "checkbox" and value.lower() not in ("true", "false"):
        return "a checkbox value is 'true' or 'false'"
    if spec.input_type == "number":
        try:
            number = float(value)
            low, high = float(spec.values[0]), float(spec.values[1])
        except (ValueError, IndexError):
            return f"{value!r} is not a number"
        if not low <= number <= high:
            return f"{value} is outside [{spec.values[0]}, {spec.values[1]}]"
    return None
