"""What Datumaro-style formats (COCO, COCO Keypoints, Datumaro, Pascal VOC) keep beside an
object's geometry, both ways, and the checks their JSON readers share.

Export: `attributes_dict` is an object's ``attributes`` as CVAT's Datumaro bridge writes them:
every attribute of the label (defaults filled, numbers as numbers, checkboxes as booleans),
``occluded``, ``rotation`` for rectangles and ellipses, and for a track frame ``track_id`` and
``keyframe``.

Import: `ObjectFields.read` takes them back (attributes the label lacks are dropped, an
illegal value refused) and `TrackFrames` rebuilds tracks from frames carrying ``track_id``,
a gap in frames meaning the track was outside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from core.annotations import AttributeValue, LabeledData, Shape, Track, TrackedShape
from core.labels import LabelSpec
from workers.formats.dataset import FormatError
from workers.formats.mapping import attribute_value
from workers.formats.tracks import FlatShape, Observation, TrackParts, rebuild_track

RESERVED = ("occluded", "rotation", "track_id", "keyframe", "outside", "score")

# --- export ---------------------------------------------------------------------------------


def attributes_dict(item: FlatShape, label: LabelSpec) -> dict:
    shape = item.shape
    given = {v.spec_id: v.value for v in shape.attributes}
    result: dict = {}
    for spec in label.attributes:
        result[spec.name] = typed(spec.input_type, given.get(spec.id, spec.default_value))
    result["occluded"] = bool(shape.occluded)
    if shape.type in ("rectangle", "ellipse"):
        result["rotation"] = float(shape.rotation)
    if item.track_id is not None:
        result["track_id"] = item.track_id
        result["keyframe"] = bool(item.keyframe)
    return result


def typed(input_type: str, value: str) -> object:
    """An attribute's text as JSON would hold it: numbers as numbers, checkboxes as booleans."""
    if input_type == "number":
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    if input_type == "checkbox":
        return value.strip().lower() == "true"
    return value


# --- import: JSON checks --------------------------------------------------------------------


def parse_json(name: str, raw: bytes, what: str) -> dict:
    try:
        document = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as error:
        raise FormatError(f"{name} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise FormatError(f"{name} is not a {what} document (a JSON object)")
    return document


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite(value: object, what: str) -> float:
    if type(value) is float and value - value == 0:  # finite: inf - inf and nan are nan
        return value
    if not is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise FormatError(f"{what} is not a number: {value!r}")
    return float(value)  # type: ignore[arg-type]


def whole(value: object, what: str) -> int:
    if type(value) is int:
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"{what} is not a whole number: {value!r}")
    return value


def flag(value: object, what: str) -> bool:
    if value is True or value is False:
        return value
    if is_number(value) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "0", "1"):
        return value.strip().lower() in ("true", "1")
    raise FormatError(f"{what} is not true or false: {value!r}")


def list_of_dicts(document: dict, key: str, name: str) -> list[dict]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise FormatError(f"{name}: {key!r} is not a list of objects")
    return value


def numbers(value: object, what: str) -> list[float]:
    if not isinstance(value, list):
        raise FormatError(f"{what} is not a list of numbers")
    return [finite(v, what) for v in value]


# --- import: object fields and tracks ---

PLAIN_RESERVED = ("occluded", "rotation")


class PlainAttributes:
    """The label attribute values of an object's ``attributes`` as `ObjectFields.read` takes
    them, remembered per label, name and value (objects repeat the same few values)."""

    def __init__(self) -> None:
        self.known: dict[tuple[int, str, object, type], AttributeValue | None] = {}

    def plain(self, label: LabelSpec, extras: dict) -> list[AttributeValue] | None:
        """The values; None when ``extras`` holds another reserved key, a value that is not
        a string, number or boolean, or a value illegal for the label."""
        values = []
        for key, raw in extras.items():
            if key in PLAIN_RESERVED:
                continue
            if key in RESERVED or type(raw) not in (str, int, float, bool):
                return None
            ident = (label.id, key, raw, type(raw))
            value = self.known.get(ident, False)
            if value is False:
                try:
                    value = self.known[ident] = attribute_value(label, str(key), raw)
                except FormatError:
                    return None
            if value is not None:
                values.append(value)
        return values


# --- import: object fields and tracks -------------------------------------------------------


@dataclass
class ObjectFields:
    """What an object says besides its geometry."""

    attributes: list[AttributeValue]
    occluded: bool
    rotation: float
    score: float
    track_id: int | None
    keyframe: bool
    outside: bool

    @classmethod
    def read(cls, extras: object, entry: dict, label: LabelSpec, where: str) -> ObjectFields:
        if not isinstance(extras, dict):
            raise FormatError(f"{where}: 'attributes' is not an object")
        values: list[AttributeValue] = []
        for key, raw in extras.items():
            if key in RESERVED:
                continue
            value = attribute_value(label, str(key), raw)
            if value is not None:
                values.append(value)
        track_id = extras.get("track_id")
        score = entry.get("score", extras.get("score", 1.0))
        return cls(
            attributes=values,
            occluded=flag(extras.get("occluded", False), f"{where}: occluded"),
            rotation=finite(extras.get("rotation", 0.0), f"{where}: rotation") % 360,
            score=finite(score, f"{where}: score"),
            track_id=None if track_id is None else whole(track_id, f"{where}: track_id"),
            keyframe=flag(extras.get("keyframe", True), f"{where}: keyframe"),
            outside=flag(extras.get("outside", False), f"{where}: outside"),
        )

    def shape(
        self,
        shape_type: str,
        points: list[float],
        label: LabelSpec,
        frame: int,
        group: int = 0,
        *,
        z_order: int = 0,
        elements: Sequence[Shape] = (),
    ) -> Shape:
        return Shape(
            type=shape_type,
            label_id=label.id,
            frame=frame,
            points=points,
            occluded=self.occluded,
            z_order=z_order,
            rotation=self.rotation if shape_type in ("rectangle", "ellipse") else 0.0,
            group=group,
            source="file",
            score=self.score,
            attributes=self.attributes,
            elements=list(elements),
        )

    def tracked(
        self, shape_type: str, points: list[float], frame: int, z_order: int = 0
    ) -> TrackedShape:
        return TrackedShape(
            type=shape_type,
            frame=frame,
            points=points,
            occluded=self.occluded,
            outside=self.outside,
            z_order=z_order,
            rotation=self.rotation if shape_type in ("rectangle", "ellipse") else 0.0,
            attributes=self.attributes,
        )


class TrackFrames:
    """Per-frame objects with a ``track_id``, gathered per (file, track) and rebuilt."""

    def __init__(self, stop_frame: int) -> None:
        self.stop_frame = stop_frame
        self.parts: dict[tuple[str, int], TrackParts] = {}

    def add(
        self,
        name: str,
        track_id: int,
        label: LabelSpec,
        shape: TrackedShape,
        keyframe: bool,
        group: int = 0,
        elements: Sequence[tuple[int, TrackedShape]] = (),
    ) -> None:
        """One frame of a track; ``elements`` are (node label id, shape) of a skeleton."""
        parts = self.parts.get((name, track_id))
        if parts is None:
            parts = self.parts[(name, track_id)] = TrackParts(label, group)
        elif parts.label.id != label.id:
            raise FormatError(f"{name}: track {track_id} changes its label")
        parts.observations.append(Observation(shape, keyframe))
        for node_id, node_shape in elements:
            parts.elements.setdefault(node_id, []).append(Observation(node_shape, keyframe))

    def tracks(self) -> list[Track]:
        result = []
        for parts in self.parts.values():
            sublabels = {sub.id: sub for sub in parts.label.sublabels}
            track = rebuild_track(
                parts, stop_frame=self.stop_frame, infer_outside=True, sublabels=sublabels
            )
            if track is not None:
                result.append(track)
        return result

    def finish(self, data: LabeledData) -> LabeledData:
        data.tracks.extend(self.tracks())
        return data


def as_tracked(shape: Shape) -> TrackedShape:
    """A shape read from a track frame, as that frame of its track."""
    return TrackedShape(
        type=shape.type,
        frame=shape.frame,
        points=list(shape.points),
        occluded=shape.occluded,
        outside=shape.outside,
        z_order=shape.z_order,
        rotation=shape.rotation,
        attributes=list(shape.attributes),
    )
