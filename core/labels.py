"""Labels and their attributes: the stored specs, the input a client sends, and CVAT's rules."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec

from core.errors import ErrorCollector

LabelType = Literal[
    "any",
    "rectangle",
    "polygon",
    "polyline",
    "points",
    "ellipse",
    "cuboid",
    "mask",
    "skeleton",
    "tag",
]
InputType = Literal["checkbox", "radio", "number", "text", "select"]
LABEL_TYPES: tuple[str, ...] = LabelType.__args__  # type: ignore[attr-defined]
INPUT_TYPES: tuple[str, ...] = InputType.__args__  # type: ignore[attr-defined]

MAX_ATTRIBUTE_NAME = 64
MAX_DEFAULT_VALUE = 128
MAX_VALUES_TEXT = 4096
COLOR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")
# CVAT's label palette, used in order for labels sent without a color.
PALETTE = (
    "#33ddff",
    "#fa3253",
    "#34d1b7",
    "#ff007c",
    "#ff6037",
    "#ddff33",
    "#24b353",
    "#b83df5",
    "#66ff66",
    "#32b7fa",
    "#ffcc33",
    "#83e070",
    "#fafa37",
    "#5986b3",
    "#8c78f0",
    "#ff6a4d",
    "#f078f0",
    "#2a7dd1",
    "#b25050",
    "#cc3366",
    "#cc9933",
    "#aaf0d1",
    "#ff00cc",
    "#3df53d",
)


class AttributeSpec(msgspec.Struct):
    id: int
    name: str
    mutable: bool
    input_type: str
    values: list[str]
    default_value: str


class LabelSpec(msgspec.Struct):
    id: int
    name: str
    color: str
    type: str
    attributes: list[AttributeSpec] = []
    sublabels: list[LabelSpec] = []
    svg: str = ""
    has_parent: bool = False


class AttributeInput(msgspec.Struct, omit_defaults=True):
    name: str
    mutable: bool | None = None
    input_type: str | None = None
    values: list[str] | None = None
    default_value: str | None = None
    id: int | None = None
    deleted: bool = False


class LabelInput(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    id: int | None = None
    color: str | None = None
    type: str | None = None
    attributes: list[AttributeInput] = []
    sublabels: list[LabelInput] = []
    svg: str | None = None
    deleted: bool = False


IdAllocator = Callable[[str], int]


def build_labels(
    inputs: Sequence[LabelInput],
    next_id: IdAllocator,
    *,
    existing: Sequence[LabelSpec] = (),
    path: str = "labels",
) -> list[LabelSpec]:
    """The label set after applying `inputs` to `existing`, or ValidationFailed naming each fault.

    Entries without an id are new labels, with an id they update that label, and
    ``deleted: true`` removes it, as CVAT's label PATCH does.
    """
    errors = ErrorCollector()
    by_id = {label.id: label for label in existing}
    result = {label.id: label for label in existing}
    staged: list[tuple[int, LabelInput]] = []
    for index, label_input in enumerate(inputs):
        where = f"{path}[{index}]"
        if label_input.id is not None and label_input.id not in by_id:
            errors.add(f"{where}.id", f"label {label_input.id} does not belong here")
            continue
        if label_input.deleted:
            if label_input.id is None:
                errors.add(f"{where}.deleted", "only an existing label (with an id) can be deleted")
            else:
                result.pop(label_input.id, None)
            continue
        staged.append((index, label_input))
    used_colors = {label.color.lower() for label in result.values()}
    for index, label_input in staged:
        current = by_id.get(label_input.id) if label_input.id is not None else None
        label = _build_label(label_input, current, next_id, errors, f"{path}[{index}]", used_colors)
        if label is not None:
            result[label.id] = label
            used_colors.add(label.color.lower())
    _check_unique_names(list(result.values()), errors, path)
    errors.raise_if_any()
    return list(result.values())


def _check_unique_names(labels: Sequence[LabelSpec], errors: ErrorCollector, path: str) -> None:
    seen: set[str] = set()
    for label in labels:
        if label.name in seen:
            errors.add(path, f"label name {label.name!r} is used more than once")
        seen.add(label.name)


def _build_label(
    data: LabelInput,
    current: LabelSpec | None,
    next_id: IdAllocator,
    errors: ErrorCollector,
    where: str,
    used_colors: set[str],
    *,
    is_sublabel: bool = False,
) -> LabelSpec | None:
    before = len(errors.errors)
    name = data.name if data.name is not None else (current.name if current else None)
    if not name or not name.strip():
        errors.add(f"{where}.name", "a label needs a name")
    label_type = data.type or (current.type if current else ("points" if is_sublabel else "any"))
    if label_type not in LABEL_TYPES:
        errors.add(f"{where}.type", f"{label_type!r} is not one of {', '.join(LABEL_TYPES)}")
    color = data.color or (current.color if current else "")
    if color and not COLOR_PATTERN.match(color):
        errors.add(f"{where}.color", f"{color!r} is not a color like #ff0000")
    attributes = _build_attributes(
        data.attributes, current.attributes if current else [], next_id, errors, where
    )
    sublabels: list[LabelSpec] = []
    svg = data.svg if data.svg is not None else (current.svg if current else "")
    if label_type == "skeleton":
        sublabels = _build_sublabels(data, current, next_id, errors, where, used_colors)
        if not svg:
            errors.add(f"{where}.svg", "a skeleton needs an svg describing its nodes and edges")
    elif data.sublabels:
        errors.add(f"{where}.sublabels", "only a skeleton label has sublabels")
    if len(errors.errors) > before:
        return None
    assert name is not None
    return LabelSpec(
        id=current.id if current else next_id("label"),
        name=name.strip(),
        color=color or _pick_color(used_colors),
        type=label_type,
        attributes=attributes,
        sublabels=sublabels,
        svg=svg_with_node_ids(svg, sublabels),
        has_parent=is_sublabel,
    )


_NODE_NAME = re.compile(r'data-label-name="([^"]*)"')


def svg_with_node_ids(svg: str, sublabels: Sequence[LabelSpec]) -> str:
    """CVAT stores skeleton nodes by sublabel id: data-label-name="x" becomes data-label-id."""
    ids = {sub.name: sub.id for sub in sublabels}

    def by_id(match: re.Match[str]) -> str:
        ident = ids.get(match.group(1))
        return f'data-label-id="{ident}"' if ident is not None else match.group(0)

    return _NODE_NAME.sub(by_id, svg)


def svg_with_node_names(svg: str, sublabels: Sequence[LabelSpec]) -> str:
    """The reverse, for backups and exports, which name nodes."""
    names = {str(sub.id): sub.name for sub in sublabels}

    def by_name(match: re.Match[str]) -> str:
        name = names.get(match.group(1))
        return f'data-label-name="{name}"' if name is not None else match.group(0)

    return re.sub(r'data-label-id="([^"]*)"', by_name, svg)


def _build_sublabels(
    data: LabelInput,
    current: LabelSpec | None,
    next_id: IdAllocator,
    errors: ErrorCollector,
    where: str,
    used_colors: set[str],
) -> list[LabelSpec]:
    existing = {s.id: s for s in current.sublabels} if current else {}
    if not data.sublabels and current is not None:
        return list(current.sublabels)
    if not data.sublabels:
        errors.add(f"{where}.sublabels", "a skeleton needs at least one sublabel (node)")
        return []
    sublabels: list[LabelSpec] = []
    for index, sub_input in enumerate(data.sublabels):
        sub_where = f"{where}.sublabels[{index}]"
        sub_current = existing.get(sub_input.id) if sub_input.id is not None else None
        if sub_input.id is not None and sub_current is None:
            errors.add(f"{sub_where}.id", f"sublabel {sub_input.id} does not belong here")
            continue
        if sub_input.deleted:
            continue
        sub = _build_label(
            sub_input, sub_current, next_id, errors, sub_where, used_colors, is_sublabel=True
        )
        if sub is not None:
            used_colors.add(sub.color.lower())
            sublabels.append(sub)
    _check_unique_names(sublabels, errors, f"{where}.sublabels")
    return sublabels


def _pick_color(used: set[str]) -> str:
    for color in PALETTE:
        if color not in used:
            return color
    return PALETTE[len(used) % len(PALETTE)]


def _build_attributes(
    inputs: Sequence[AttributeInput],
    existing: Sequence[AttributeSpec],
    next_id: IdAllocator,
    errors: ErrorCollector,
    where: str,
) -> list[AttributeSpec]:
    by_id = {spec.id: spec for spec in existing}
    result = {spec.id: spec for spec in existing}
    names: set[str] = set()
    for index, attr_input in enumerate(inputs):
        attr_where = f"{where}.attributes[{index}]"
        current = by_id.get(attr_input.id) if attr_input.id is not None else None
        if attr_input.id is not None and current is None:
            errors.add(f"{attr_where}.id", f"attribute {attr_input.id} does not belong here")
            continue
        if attr_input.deleted:
            result.pop(attr_input.id or -1, None)
            continue
        spec = _build_attribute(attr_input, current, next_id, errors, attr_where)
        if spec is None:
            continue
        if spec.name in names:
            errors.add(f"{attr_where}.name", f"attribute name {spec.name!r} is used twice")
        names.add(spec.name)
        result[spec.id] = spec
    return list(result.values())


def _build_attribute(
    data: AttributeInput,
    current: AttributeSpec | None,
    next_id: IdAllocator,
    errors: ErrorCollector,
    where: str,
) -> AttributeSpec | None:
    before = len(errors.errors)
    name = data.name.strip()
    if not name:
        errors.add(f"{where}.name", "an attribute needs a name")
    elif len(name) > MAX_ATTRIBUTE_NAME:
        errors.add(f"{where}.name", f"an attribute name is at most {MAX_ATTRIBUTE_NAME} characters")
    input_type = data.input_type or (current.input_type if current else None)
    mutable = data.mutable if data.mutable is not None else (current.mutable if current else None)
    if input_type is None:
        errors.add(f"{where}.input_type", "this field is required")
    elif input_type not in INPUT_TYPES:
        errors.add(f"{where}.input_type", f"{input_type!r} is not one of {', '.join(INPUT_TYPES)}")
    if mutable is None:
        errors.add(f"{where}.mutable", "this field is required")
    values = data.values if data.values is not None else (current.values if current else None)
    if values is None:
        errors.add(f"{where}.values", "this field is required")
    if current is not None:
        _check_unchangeable(data, current, errors, where)
    if len(errors.errors) > before:
        return None
    assert input_type is not None and mutable is not None and values is not None
    default = data.default_value
    if default is None:
        default = current.default_value if current else ""
    default = _check_values(input_type, values, default, errors, where)
    if default is None:
        return None
    return AttributeSpec(
        id=current.id if current else next_id("attribute"),
        name=name,
        mutable=mutable,
        input_type=input_type,
        values=list(values),
        default_value=default,
    )


def _check_unchangeable(
    data: AttributeInput, current: AttributeSpec, errors: ErrorCollector, where: str
) -> None:
    if data.input_type is not None and data.input_type != current.input_type:
        errors.add(f"{where}.input_type", "the input type of an attribute cannot be changed")
    if data.mutable is not None and data.mutable != current.mutable:
        errors.add(f"{where}.mutable", "whether an attribute is mutable cannot be changed")
    if (
        current.input_type == "number"
        and data.values is not None
        and list(data.values) != current.values
    ):
        errors.add(f"{where}.values", "the range of a number attribute cannot be changed")


def _check_values(
    input_type: str, values: list[str], default: str, errors: ErrorCollector, where: str
) -> str | None:
    """Checks `values` for the input type; returns the effective default, or None on error."""
    if len("\n".join(values)) > MAX_VALUES_TEXT:
        errors.add(f"{where}.values", f"the values take at most {MAX_VALUES_TEXT} characters")
        return None
    if len(default) > MAX_DEFAULT_VALUE:
        errors.add(f"{where}.default_value", f"at most {MAX_DEFAULT_VALUE} characters")
        return None
    check = _VALUE_CHECKS[input_type]
    return check(values, default, errors, where)


def _check_choice(
    values: list[str], default: str, errors: ErrorCollector, where: str, kind: str
) -> str | None:
    if not values or not any(v.strip() for v in values):
        errors.add(f"{where}.values", f"a {kind} attribute needs at least one value")
        return None
    if len(set(values)) != len(values):
        errors.add(f"{where}.values", "the values must be distinct")
        return None
    if not default:
        return values[0]
    if default not in values:
        errors.add(f"{where}.default_value", f"{default!r} is not one of the values")
        return None
    return default


def _check_number(
    values: list[str], default: str, errors: ErrorCollector, where: str
) -> str | None:
    try:
        low, high, step = (float(v) for v in values)
    except ValueError:
        errors.add(f"{where}.values", "a number attribute needs three numbers: min, max, step")
        return None
    if low > high or step <= 0 or step > high - low and high != low:
        errors.add(f"{where}.values", "needs min <= max and 0 < step <= max - min")
        return None
    if not default:
        return values[0]
    try:
        value = float(default)
    except ValueError:
        errors.add(f"{where}.default_value", f"{default!r} is not a number")
        return None
    if not low <= value <= high:
        errors.add(f"{where}.default_value", f"{default} is outside [{values[0]}, {values[1]}]")
        return None
    return default


def _check_checkbox(
    values: list[str], default: str, errors: ErrorCollector, where: str
) -> str | None:
    default = default or (values[0] if values else "false")
    if default.lower() not in ("true", "false"):
        errors.add(f"{where}.default_value", "a checkbox default is 'true' or 'false'")
        return None
    return default.lower()


def _check_text(values: list[str], default: str, errors: ErrorCollector, where: str) -> str:
    return default or (values[0] if values else "")


_VALUE_CHECKS: dict[str, Callable[[list[str], str, ErrorCollector, str], str | None]] = {
    "select": lambda v, d, e, w: _check_choice(v, d, e, w, "select"),
    "radio": lambda v, d, e, w: _check_choice(v, d, e, w, "radio"),
    "number": _check_number,
    "checkbox": _check_checkbox,
    "text": _check_text,
}


def all_labels(labels: Sequence[LabelSpec]) -> list[LabelSpec]:
    """Top-level labels followed by their sublabels."""
    flat: list[LabelSpec] = []
    for label in labels:
        flat.append(label)
        flat.extend(label.sublabels)
    return flat
