"""Name lookups both directions share: labels, skeleton nodes, attributes and frames.

Exporters turn ids into names; importers turn names back into the ids of the task they
import into, refusing (with `FormatError`) a label or frame the task does not have and
dropping attributes the label does not define, as CVAT does.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Sequence

from core.annotation_rules import attribute_value_problem
from core.annotations import AttributeValue
from core.labels import AttributeSpec, LabelSpec
from workers.formats.dataset import FormatError, FrameInfo

TRUE_WORDS = ("true", "1")
FALSE_WORDS = ("false", "0")


class LabelIndex:
    """The task's labels by id and by name, skeleton nodes per skeleton."""

    def __init__(self, labels: Sequence[LabelSpec]) -> None:
        self.labels = list(labels)
        self.by_name = {label.name: label for label in labels}
        self.by_id: dict[int, LabelSpec] = {}
        self.parent: dict[int, LabelSpec] = {}
        for label in labels:
            self.by_id[label.id] = label
            for sub in label.sublabels:
                self.by_id[sub.id] = sub
                self.parent[sub.id] = label

    def top(self, name: str | None) -> LabelSpec:
        """The top-level label called ``name``; FormatError if the task has none."""
        label = self.by_name.get(name or "")
        if label is None:
            raise FormatError(f"the label {name!r} does not exist in the task")
        return label

    def node(self, skeleton: LabelSpec, name: str | None) -> LabelSpec:
        for sub in skeleton.sublabels:
            if sub.name == name:
                return sub
        raise FormatError(f"the skeleton {skeleton.name!r} has no point {name!r}")

    def name(self, label_id: int) -> str | None:
        label = self.by_id.get(label_id)
        return label.name if label else None

    def attribute_names(self, label_id: int) -> dict[int, str]:
        label = self.by_id.get(label_id)
        return {spec.id: spec.name for spec in label.attributes} if label else {}

    def specs(self, label_id: int) -> dict[int, AttributeSpec]:
        label = self.by_id.get(label_id)
        return {spec.id: spec for spec in label.attributes} if label else {}


def attribute_value(label: LabelSpec, name: str, raw: object) -> AttributeValue | None:
    """The label's attribute ``name`` set to ``raw``; None when the label has no such
    attribute; FormatError when the value is not legal for it."""
    spec = next((s for s in label.attributes if s.name == name), None)
    if spec is None:
        return None
    value = attribute_text(raw)
    if spec.input_type == "checkbox":
        value = _checkbox_text(value, spec)
    problem = attribute_value_problem(spec, value)
    if problem:
        raise FormatError(f"attribute {name!r} of label {label.name!r}: {problem}")
    return AttributeValue(spec.id, value)


def attribute_text(raw: object) -> str:
    """CVAT's text form of an attribute value read from JSON or XML."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise FormatError(f"{raw} is not a usable attribute value")
        return str(int(raw)) if raw.is_integer() else repr(raw)
    if isinstance(raw, int | str):
        return str(raw)
    if raw is None:
        return ""
    raise FormatError(f"{raw!r} is not a usable attribute value")


def _checkbox_text(value: str, spec: AttributeSpec) -> str:
    lowered = value.strip().lower()
    if lowered in TRUE_WORDS:
        return "true"
    if lowered in FALSE_WORDS:
        return "false"
    raise FormatError(f"attribute {spec.name!r}: {value!r} is not 'true' or 'false'")


def split_attributes(
    label: LabelSpec, values: Sequence[AttributeValue]
) -> tuple[list[AttributeValue], list[AttributeValue]]:
    """(immutable, mutable) values, as a track holds them (track-level vs per keyframe)."""
    mutable_ids = {spec.id for spec in label.attributes if spec.mutable}
    immutable = [v for v in values if v.spec_id not in mutable_ids]
    mutable = [v for v in values if v.spec_id in mutable_ids]
    return immutable, mutable


class FrameIndex:
    """Matches a format's image names (and frame numbers) to the task's frames."""

    def __init__(self, frames: Sequence[FrameInfo]) -> None:
        self.frames = list(frames)
        self.by_index = {frame.index: frame for frame in frames}
        self.by_number = {frame.cvat_number: frame for frame in frames}
        self.by_stem: dict[str, FrameInfo] = {}
        self.by_base: dict[str, list[FrameInfo]] = {}
        for frame in frames:
            stem = _stem(frame.name)
            self.by_stem.setdefault(stem, frame)
            self.by_base.setdefault(posixpath.basename(stem), []).append(frame)

    @property
    def stop_frame(self) -> int:
        return max(self.by_index, default=-1)

    def match(self, name: str | None, number: int | None = None) -> FrameInfo | None:
        """The frame whose name without extension is ``name``'s; else the one frame with that
        base name; else the frame CVAT numbers ``number``; else None."""
        if name:
            stem = _stem(name)
            frame = self.by_stem.get(stem)
            if frame is not None:
                return frame
            candidates = self.by_base.get(posixpath.basename(stem), [])
            if len(candidates) == 1:
                return candidates[0]
        if number is not None:
            return self.by_number.get(number)
        return None

    def require(self, name: str | None, number: int | None = None) -> FrameInfo:
        frame = self.match(name, number)
        if frame is None:
            what = repr(name) if name else f"number {number}"
            raise FormatError(f"the image {what} does not match any frame of the task")
        return frame

    def match_item(self, item_id: str, number: int | None = None) -> FrameInfo | None:
        """As `match`, for a Datumaro-style item id: a file name without its extension."""
        return self.match(f"{item_id}.", number)

    def require_item(self, item_id: str, number: int | None = None) -> FrameInfo:
        frame = self.match_item(item_id, number)
        if frame is None:
            raise FormatError(f"the item {item_id!r} does not match any frame of the task")
        return frame

    def frame_number(self, number: int) -> int:
        """The task-relative index of the frame CVAT numbers ``number``."""
        frame = self.by_number.get(number)
        if frame is None:
            raise FormatError(f"frame {number} is not a frame of the task")
        return frame.index


def _stem(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return posixpath.splitext(name.lstrip("/"))[0]
