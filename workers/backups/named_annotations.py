"""A job's annotations as backups carry them: CVAT's annotations body with labels and
attributes named instead of numbered and without object ids, so that they can be written
into a task whose labels have other ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from core.annotations import LabeledData
from core.labels import LabelSpec
from workers.formats.dataset import FormatError
from workers.formats.mapping import LabelIndex

KINDS = ("tags", "shapes", "tracks")


def named(data: LabeledData, labels: Sequence[LabelSpec]) -> dict[str, Any]:
    index = LabelIndex(labels)
    raw = msgspec.to_builtins(data)
    body: dict[str, Any] = {"version": 0}
    for kind in KINDS:
        body[kind] = [_named(index, item, None) for item in raw[kind]]
    return body


def _named(index: LabelIndex, obj: dict[str, Any], track_label: int | None) -> dict[str, Any]:
    """``obj`` by names; a track's keyframes have no label of their own but their track's."""
    obj.pop("id", None)
    own = obj.pop("label_id", None)
    if own is not None:
        obj = {"label": index.name(own), **obj}
    label_id = own if own is not None else track_label
    names = index.attribute_names(label_id) if label_id is not None else {}
    obj["attributes"] = [
        {"name": names[item["spec_id"]], "value": item["value"]}
        for item in obj.get("attributes", [])
        if item["spec_id"] in names
    ]
    if "shapes" in obj:
        obj["shapes"] = [_named(index, shape, label_id) for shape in obj["shapes"]]
    if "elements" in obj:
        obj["elements"] = [_named(index, element, None) for element in obj["elements"]]
    return obj


def resolved(raw: object, labels: Sequence[LabelSpec], where: str) -> LabeledData:
    """The annotations of one job of a backup for a task with ``labels``; FormatError naming
    the place of a label, skeleton node or attribute the task does not have, or of a value
    of the wrong kind."""
    if not isinstance(raw, dict):
        raise FormatError(f"{where} is not an annotations object")
    index = LabelIndex(labels)
    body: dict[str, Any] = {"version": 0}
    for kind in KINDS:
        items = raw.get(kind, [])
        if not isinstance(items, list):
            raise FormatError(f"{where}.{kind} is not a list")
        body[kind] = [
            _numbered(index, item, None, f"{where}.{kind}[{number}]")
            for number, item in enumerate(items)
        ]
    try:
        return msgspec.convert(body, LabeledData)
    except msgspec.ValidationError as error:
        raise FormatError(f"{where}: {error}") from None


def _numbered(
    index: LabelIndex, obj: object, skeleton: LabelSpec | None, where: str
) -> dict[str, Any]:
    """``obj`` with ids for names; ``skeleton``: the label whose nodes its elements are."""
    label, found = _label_of(index, obj, skeleton, where)
    found["label_id"] = label.id
    found["attributes"] = _attributes(label, found.get("attributes", []), where)
    if "shapes" in found:
        found["shapes"] = [
            _keyframe(label, shape, f"{where}.shapes[{number}]")
            for number, shape in enumerate(_list(found["shapes"], f"{where}.shapes"))
        ]
    if "elements" in found:
        found["elements"] = [
            _numbered(index, element, label, f"{where}.elements[{number}]")
            for number, element in enumerate(_list(found["elements"], f"{where}.elements"))
        ]
    return found


def _label_of(
    index: LabelIndex, obj: object, skeleton: LabelSpec | None, where: str
) -> tuple[LabelSpec, dict[str, Any]]:
    if not isinstance(obj, dict):
        raise FormatError(f"{where} is not an object")
    found = {key: value for key, value in obj.items() if key not in ("id", "label_id")}
    name = found.pop("label", None)
    if not isinstance(name, str):
        raise FormatError(f"{where}.label: a label name is required")
    try:
        label = index.node(skeleton, name) if skeleton is not None else index.top(name)
    except FormatError as error:
        raise FormatError(f"{where}.label: {error}") from None
    return label, found


def _keyframe(label: LabelSpec, obj: object, where: str) -> dict[str, Any]:
    """A track's keyframe: its attributes are its track's label's."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where} is not an object")
    found = {key: value for key, value in obj.items() if key not in ("id", "label", "label_id")}
    found["attributes"] = _attributes(label, found.get("attributes", []), where)
    return found


def _attributes(label: LabelSpec, items: object, where: str) -> list[dict[str, Any]]:
    specs = {spec.name: spec.id for spec in label.attributes}
    result = []
    for number, item in enumerate(_list(items, f"{where}.attributes")):
        place = f"{where}.attributes[{number}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise FormatError(f"{place}: an attribute needs a name")
        if item["name"] not in specs:
            raise FormatError(f"{place}: label {label.name!r} has no attribute {item['name']!r}")
        result.append({"spec_id": specs[item["name"]], "value": item.get("value")})
    return result


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(f"{where} is not a list")
    return value
