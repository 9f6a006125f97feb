"""The CVAT annotation object model: tags, shapes and tracks, as stored and as sent.

The same Structs serve the wire (REST bodies) and the events; objects are immutable once
stored: an edit replaces the object, so a reader holding an older state never sees it change.
"""

from __future__ import annotations

from typing import Literal

import msgspec

ShapeType = Literal[
    "rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton"
]
Source = Literal["manual", "auto", "semi-auto", "file", "consensus"]
SHAPE_TYPES: tuple[str, ...] = ShapeType.__args__  # type: ignore[attr-defined]
SOURCES: tuple[str, ...] = Source.__args__  # type: ignore[attr-defined]


class AttributeValue(msgspec.Struct, frozen=True):
    spec_id: int
    value: str


class TrackedShape(msgspec.Struct, frozen=True, omit_defaults=False):
    """One keyframe of a track."""

    type: str
    frame: int
    points: list[float] = []
    occluded: bool = False
    outside: bool = False
    z_order: int = 0
    rotation: float = 0.0
    attributes: list[AttributeValue] = []
    id: int | None = None


class Shape(msgspec.Struct, frozen=True):
    type: str
    label_id: int
    frame: int
    points: list[float] = []
    occluded: bool = False
    outside: bool = False
    z_order: int = 0
    rotation: float = 0.0
    group: int | None = 0
    source: str = "manual"
    score: float = 1.0
    attributes: list[AttributeValue] = []
    elements: list[Shape] = []
    id: int | None = None


class Track(msgspec.Struct, frozen=True):
    label_id: int
    frame: int
    shapes: list[TrackedShape] = []
    group: int | None = 0
    source: str = "manual"
    attributes: list[AttributeValue] = []
    elements: list[Track] = []
    id: int | None = None


class Tag(msgspec.Struct, frozen=True):
    label_id: int
    frame: int
    group: int | None = 0
    source: str = "manual"
    attributes: list[AttributeValue] = []
    id: int | None = None


class LabeledData(msgspec.Struct):
    """CVAT's annotations body (PUT/PATCH/GET)."""

    version: int = 0
    tags: list[Tag] = []
    shapes: list[Shape] = []
    tracks: list[Track] = []


class ObjectIds(msgspec.Struct, frozen=True):
    """The top-level objects an event touched."""

    tags: list[int] = []
    shapes: list[int] = []
    tracks: list[int] = []

    def count(self) -> int:
        return len(self.tags) + len(self.shapes) + len(self.tracks)


class Revision(msgspec.Struct, frozen=True, array_like=True):
    """When an object last changed and by whom; `fields`: versions of fields changed since
    its creation (a field not named there is as old as the object)."""

    created: int
    version: int
    actor: int | None
    fields: dict[str, int] = {}

    def of(self, field: str) -> int:
        return self.fields.get(field, self.created)


class AnnotationState(msgspec.Struct, frozen=True):
    """A job's annotations at one version. Replaced, never changed in place."""

    tags: dict[int, Tag] = {}
    shapes: dict[int, Shape] = {}
    tracks: dict[int, Track] = {}
    revisions: dict[int, Revision] = {}

    def as_data(self, version: int) -> LabeledData:
        return LabeledData(
            version=version,
            tags=list(self.tags.values()),
            shapes=list(self.shapes.values()),
            tracks=list(self.tracks.values()),
        )

    def with_objects(
        self, data: LabeledData, version: int = 0, actor: int | None = None
    ) -> AnnotationState:
        """The state with `data`'s objects added or replaced, as of event `version`."""
        revisions = dict(self.revisions)
        kinds = []
        for current, objects in (
            (self.tags, data.tags),
            (self.shapes, data.shapes),
            (self.tracks, data.tracks),
        ):
            updated = dict(current)
            for obj in objects:
                previous = current.get(obj.id)  # type: ignore[arg-type]
                revisions[obj.id] = _revise(  # type: ignore[index]
                    revisions.get(obj.id),
                    previous,
                    obj,
                    version,
                    actor,  # type: ignore[arg-type]
                )
                updated[obj.id] = obj  # type: ignore[index]
            kinds.append(updated)
        return AnnotationState(kinds[0], kinds[1], kinds[2], revisions)

    def without(self, ids: ObjectIds) -> AnnotationState:
        tags, shapes, tracks = dict(self.tags), dict(self.shapes), dict(self.tracks)
        revisions = dict(self.revisions)
        for kind, known in ((ids.tags, tags), (ids.shapes, shapes), (ids.tracks, tracks)):
            for ident in kind:
                known.pop(ident, None)
                revisions.pop(ident, None)
        return AnnotationState(tags, shapes, tracks, revisions)

    def find(self, ident: int) -> Tag | Shape | Track | None:
        return self.shapes.get(ident) or self.tracks.get(ident) or self.tags.get(ident)

    def ids(self) -> ObjectIds:
        return ObjectIds(list(self.tags), list(self.shapes), list(self.tracks))


def _revise(
    revision: Revision | None,
    previous: msgspec.Struct | None,
    new: msgspec.Struct,
    version: int,
    actor: int | None,
) -> Revision:
    if previous is None or revision is None:
        return Revision(version, version, actor)
    changed = {
        field: version
        for field in new.__struct_fields__
        if getattr(previous, field) != getattr(new, field)
    }
    return Revision(revision.created, version, actor, {**revision.fields, **changed})


def ids_of(data: LabeledData) -> ObjectIds:
    return ObjectIds(
        [t.id for t in data.tags if t.id is not None],
        [s.id for s in data.shapes if s.id is not None],
        [t.id for t in data.tracks if t.id is not None],
    )
