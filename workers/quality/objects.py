"""The objects compared on one frame: CVAT tags, shapes and interpolated tracks, flattened.

Mirrors what CVAT feeds its comparator (its datumaro conversion): tracks interpolated with
outside frames dropped, cuboids left out, attributes with every label attribute filled in
(numbers as floats, checkboxes as booleans) plus `occluded` for shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from core.annotations import AnnotationState, AttributeValue, Track
from core.interpolation import FrameShape, interpolate_skeleton, interpolate_track
from core.labels import AttributeSpec, LabelSpec

Box = tuple[float, float, float, float]  # x, y, width, height

VISIBLE, HIDDEN, ABSENT = 2, 1, 0
SKIPPED_TYPES = frozenset({"cuboid"})


@dataclass(eq=False, slots=True)
class Element:
    label: int
    x: float
    y: float
    visibility: int


@dataclass(eq=False, slots=True)
class Ann:
    """One object on one frame. Identity matters: two equal-looking objects are different."""

    id: int
    kind: str  # "tag", "shape" or "track"
    type: str  # "tag" or the shape type
    label: int
    points: list[float] = field(default_factory=list)
    rotation: float = 0.0
    z_order: int = 0
    group: int = 0
    attributes: dict[object, object] = field(default_factory=dict)
    elements: list[Element] = field(default_factory=list)

    _region_box: Box | None = field(default=None, repr=False)
    _outline: list[float] | None = field(default=None, repr=False)

    def region_box(self, compute: Callable[[Ann], Box]) -> Box:
        """`compute(self)`, remembered."""
        if self._region_box is None:
            self._region_box = compute(self)
        return self._region_box

    def outline(self, compute: Callable[[Ann], list[float]]) -> list[float]:
        """`compute(self)`, remembered (a rotated box's corners)."""
        if self._outline is None:
            self._outline = compute(self)
        return self._outline

    @property
    def is_tag(self) -> bool:
        return self.type == "tag"

    def bbox(self) -> Box | None:
        """datumaro's get_bbox: the unrotated box; None for tags."""
        if self.type == "tag":
            return None
        if self.type == "rectangle":
            x1, y1, x2, y2 = self.points[:4]
            return (x1, y1, x2 - x1, y2 - y1)
        if self.type == "ellipse":
            cx, cy, rx_x, ry_y = self.points[:4]
            rx, ry = abs(rx_x - cx), abs(cy - ry_y)
            return (cx - rx, cy - ry, 2 * rx, 2 * ry)
        if self.type == "mask":
            left, top, right, bottom = self.points[-4:]
            return (left, top, right - left + 1, bottom - top + 1)
        if self.type == "skeleton":
            xs = [e.x for e in self.elements]
            ys = [e.y for e in self.elements]
        else:
            xs, ys = self.points[0::2], self.points[1::2]
        if not xs:
            return (0.0, 0.0, 0.0, 0.0)
        return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))

    def annotation_id(self, job_id: int) -> dict[str, object]:
        return {
            "obj_id": self.id,
            "job_id": job_id,
            "type": self.kind,
            "shape_type": None if self.type == "tag" else self.type,
        }


@dataclass(frozen=True)
class LabelCatalog:
    """What the comparison needs from a task's labels."""

    top_level: list[tuple[int, str]]  # confusion matrix order
    attributes: dict[int, list[AttributeSpec]]
    nodes: dict[int, list[int]]  # skeleton label -> sublabel ids in order

    @classmethod
    def of(cls, labels: Sequence[LabelSpec]) -> LabelCatalog:
        attributes: dict[int, list[AttributeSpec]] = {}
        nodes: dict[int, list[int]] = {}
        for label in labels:
            attributes[label.id] = list(label.attributes)
            nodes[label.id] = [sub.id for sub in label.sublabels]
            for sub in label.sublabels:
                attributes[sub.id] = list(sub.attributes)
        return cls([(label.id, label.name) for label in labels], attributes, nodes)

    def attribute_values(
        self, label: int, given: Iterable[AttributeValue], occluded: bool | None
    ) -> dict[object, object]:
        specs = self.attributes.get(label)
        if not specs:
            return {} if occluded is None else {"occluded": occluded}
        by_id = {a.spec_id: a.value for a in given}
        values: dict[object, object] = {}
        for spec in specs:
            values[spec.id] = _typed(spec, by_id.get(spec.id, spec.default_value))
        if occluded is not None:
            values["occluded"] = occluded
        return values


def _typed(spec: AttributeSpec, raw: str) -> object:
    if spec.input_type == "number":
        try:
            return float(raw)
        except ValueError:
            return raw
    if spec.input_type == "checkbox":
        return raw.lower() == "true"
    return raw


def objects_by_frame(
    state: AnnotationState,
    frames: Iterable[int],
    stop_frame: int,
    labels: LabelCatalog,
) -> dict[int, list[Ann]]:
    """Every frame of `frames` with the objects on it (tracks interpolated, outside dropped)."""
    wanted = set(frames)
    result: dict[int, list[Ann]] = {frame: [] for frame in wanted}
    for tag in state.tags.values():
        if tag.frame in wanted:
            result[tag.frame].append(
                Ann(
                    tag.id or 0, "tag", "tag", tag.label_id, group=tag.group or 0,
                    attributes=labels.attribute_values(tag.label_id, tag.attributes, None),
                )
            )  # fmt: skip
    for shape in state.shapes.values():
        if shape.frame in wanted and not shape.outside and shape.type not in SKIPPED_TYPES:
            elements = [
                _element(e.label_id, e.points, e.outside, e.occluded) for e in shape.elements
            ]
            result[shape.frame].append(
                _ann(shape.id or 0, "shape", shape.type, shape.label_id, shape, shape.group,
                     shape.attributes, labels, elements)
            )  # fmt: skip
    for track in state.tracks.values():
        for frame, ann in _track_frames(track, wanted, stop_frame, labels):
            result[frame].append(ann)
    return result


def _track_frames(
    track: Track, wanted: set[int], stop_frame: int, labels: LabelCatalog
) -> Iterable[tuple[int, Ann]]:
    if not track.shapes or track.shapes[0].type in SKIPPED_TYPES:
        return
    if track.shapes[0].type == "skeleton":
        for frame in interpolate_skeleton(track, stop_frame=stop_frame):
            if frame.shape.frame not in wanted:
                continue
            elements = [
                _element(label_id, s.points, s.outside, s.occluded)
                for label_id, s in frame.elements.items()
            ]
            yield frame.shape.frame, _ann(
                track.id or 0, "track", "skeleton", track.label_id, frame.shape, track.group,
                [*track.attributes, *frame.shape.attributes], labels, elements,
            )  # fmt: skip
        return
    for shape in interpolate_track(track.shapes, stop_frame=stop_frame):
        if shape.frame in wanted:
            yield shape.frame, _ann(
                track.id or 0, "track", shape.type, track.label_id, shape, track.group,
                [*track.attributes, *shape.attributes], labels, [],
            )  # fmt: skip


def _element(label: int, points: Sequence[float], outside: bool, occluded: bool) -> Element:
    visibility = ABSENT if outside else HIDDEN if occluded else VISIBLE
    x, y = (points[0], points[1]) if len(points) >= 2 else (0.0, 0.0)
    return Element(label, x, y, visibility)


def _ann(
    ident: int,
    kind: str,
    shape_type: str,
    label: int,
    shape: FrameShape | object,
    group: int | None,
    attributes: Iterable[AttributeValue],
    labels: LabelCatalog,
    elements: list[Element],
) -> Ann:
    return Ann(
        ident,
        kind,
        shape_type,
        label,
        points=list(shape.points),  # type: ignore[attr-defined]
        rotation=float(shape.rotation),  # type: ignore[attr-defined]
        z_order=int(shape.z_order),  # type: ignore[attr-defined]
        group=group or 0,
        attributes=labels.attribute_values(label, attributes, bool(shape.occluded)),  # type: ignore[attr-defined]
        elements=elements,
    )
