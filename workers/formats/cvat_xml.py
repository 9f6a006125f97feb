"""CVAT XML 1.1 building blocks: shape geometry as XML attributes and back, and ``<meta>``.

Shared by the "CVAT for images" and "CVAT for video" writers and the "CVAT 1.1" reader in
`workers.formats.cvat_images`. Coordinates are written with two decimals, as CVAT does.
Geometry per element (CVAT manual 2.29 and CVAT's ``formats/cvat.py``):

- ``box``: ``xtl ytl xbr ybr`` (+ ``rotation`` when not 0)
- ``ellipse``: ``cx cy rx ry`` (+ ``rotation``); CVAT's points are ``[cx, cy, cx+rx, cy-ry]``
- ``polygon``/``polyline``/``points``: ``points="x,y;x,y"``
- ``cuboid``: ``xtl1 ytl1 xbl1 ybl1 xtr1 ytr1 xbr1 ybr1`` and the same with ``2``
- ``mask``: ``rle="n, n, ..." left top width height`` (runs over the box, row-major)
- ``skeleton``: no geometry; its nodes are ``<points label=...>`` children
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

import msgspec
from lxml import etree

from core.labels import LabelSpec, svg_with_node_names
from workers.formats.dataset import FormatError, TaskDataset

TYPE_TO_TAG = {
    "rectangle": "box",
    "ellipse": "ellipse",
    "polygon": "polygon",
    "polyline": "polyline",
    "points": "points",
    "cuboid": "cuboid",
    "mask": "mask",
    "skeleton": "skeleton",
}
TAG_TO_TYPE = {tag: shape_type for shape_type, tag in TYPE_TO_TAG.items()}
CUBOID_NAMES = tuple(
    f"{corner}{side}"
    for side in ("1", "2")
    for corner in ("xtl", "ytl", "xbl", "ybl", "xtr", "ytr", "xbr", "ybr")
)


_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (lxml refuses them)."""
    return _NOT_XML.sub("", text)


def coordinate(value: float) -> str:
    return f"{value:.2f}"


def flag(value: bool) -> str:
    return "1" if value else "0"


# --- writing --------------------------------------------------------------------------------
# Objects are written as XML text directly (as lxml would serialize and indent them): building
# an lxml element per shape costs more than the rest of an export.

_ATTRIBUTE_SPECIALS = re.compile('[&<>"\n\r\t]')
_TEXT_SPECIALS = re.compile("[&<>\r]")
_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "\n": "&#10;",
    "\r": "&#13;",
    "\t": "&#9;",
}


def _escape(match: re.Match) -> str:
    return _ESCAPES[match.group()]


@lru_cache(maxsize=4096)
def quoted(value: str) -> str:
    """``value`` cleaned and escaped for a double-quoted XML attribute, as lxml writes it."""
    return _ATTRIBUTE_SPECIALS.sub(_escape, clean(value))


@lru_cache(maxsize=4096)
def escaped(value: str) -> str:
    """``value`` cleaned and escaped as element text, as lxml writes it."""
    return _TEXT_SPECIALS.sub(_escape, clean(value))


def element_markup(pad: str, tag: str, attributes: str, children: Sequence[str]) -> str:
    """An element as indented XML text: ``attributes`` is its ``' name="value"'`` run,
    ``children`` its lines already indented one level deeper."""
    if not children:
        return f"{pad}<{tag}{attributes}/>"
    inner = "\n".join(children)
    return f"{pad}<{tag}{attributes}>\n{inner}\n{pad}</{tag}>"


def attribute_markup(pad: str, name: str, value: str) -> str:
    return f'{pad}<attribute name="{quoted(name)}">{escaped(value)}</attribute>'


_BOX = ' xtl="%.2f" ytl="%.2f" xbr="%.2f" ybr="%.2f"'
_ELLIPSE = ' cx="%.2f" cy="%.2f" rx="%.2f" ry="%.2f"'
_CUBOID = "".join(f' {name}="%.2f"' for name in CUBOID_NAMES)


@lru_cache(maxsize=1024)
def _pairs_format(count: int) -> str:
    return ";".join(["%.2f,%.2f"] * count)


def geometry_markup(shape_type: str, points: Sequence[float], rotation: float) -> str:
    """The XML attributes holding a shape's geometry (may raise IndexError/ValueError)."""
    if shape_type == "rectangle":
        markup = _BOX % (points[0], points[1], points[2], points[3])
        return markup + rotation_markup(rotation)
    if shape_type == "ellipse":
        cx, cy, right, top = points[0], points[1], points[2], points[3]
        return _ELLIPSE % (cx, cy, right - cx, cy - top) + rotation_markup(rotation)
    if shape_type == "cuboid":
        return _CUBOID % tuple(points[i] for i in range(len(CUBOID_NAMES)))
    if shape_type == "mask":
        return "".join(f' {name}="{value}"' for name, value in _mask_attributes(points).items())
    if shape_type == "skeleton":
        return ""
    return f' points="{points_text(points)}"'


def rotation_markup(rotation: float) -> str:
    return f' rotation="{rotation:.2f}"' if rotation else ""


def _mask_attributes(points: Sequence[float]) -> dict:
    if len(points) < 5:
        raise ValueError("a mask needs runs and a box")
    left, top, right, bottom = (int(v) for v in points[-4:])
    return {
        "rle": ", ".join(str(int(v)) for v in points[:-4]),
        "left": str(left),
        "top": str(top),
        "width": str(right - left + 1),
        "height": str(bottom - top + 1),
    }


def points_text(points: Sequence[float]) -> str:
    if len(points) % 2:
        raise ValueError("an odd number of coordinates")
    return _pairs_format(len(points) // 2) % tuple(points)


def meta_element(dataset: TaskDataset) -> etree._Element:
    """``<meta><task>...</task><dumped/></meta>`` with the task's labels."""
    meta = etree.Element("meta")
    task = etree.SubElement(meta, "task")
    numbers = [frame.cvat_number for frame in dataset.frames]
    start, stop = min(numbers, default=0), max(numbers, default=0)
    fields = [
        ("id", "" if dataset.task_id is None else str(dataset.task_id)),
        ("name", dataset.name),
        ("size", str(len(dataset.frames))),
        ("mode", dataset.mode),
        ("overlap", "0"),
        ("bugtracker", ""),
        ("created", dataset.created),
        ("updated", dataset.updated),
        ("subset", dataset.subset or "default"),
        ("start_frame", str(start)),
        ("stop_frame", str(max(stop, 0))),
        ("frame_filter", ""),
    ]
    for tag, text in fields:
        if tag == "id" and not text:
            continue
        etree.SubElement(task, tag).text = clean(text)
    etree.SubElement(task, "segments")
    task.append(labels_element(dataset.labels))
    etree.SubElement(meta, "dumped").text = dataset.dumped
    return meta


def labels_element(labels: Sequence[LabelSpec]) -> etree._Element:
    element = etree.Element("labels")
    for label in labels:
        element.append(_label_element(label, parent=None))
        for sub in label.sublabels:
            element.append(_label_element(sub, parent=label))
    return element


def _label_element(label: LabelSpec, parent: LabelSpec | None) -> etree._Element:
    element = etree.Element("label")
    etree.SubElement(element, "name").text = clean(label.name)
    etree.SubElement(element, "color").text = label.color
    etree.SubElement(element, "type").text = label.type
    attributes = etree.SubElement(element, "attributes")
    for spec in label.attributes:
        attribute = etree.SubElement(attributes, "attribute")
        etree.SubElement(attribute, "name").text = clean(spec.name)
        etree.SubElement(attribute, "mutable").text = str(spec.mutable)
        etree.SubElement(attribute, "input_type").text = spec.input_type
        etree.SubElement(attribute, "default_value").text = clean(spec.default_value)
        etree.SubElement(attribute, "values").text = clean("\n".join(spec.values))
    if parent is not None:
        etree.SubElement(element, "parent").text = clean(parent.name)
    if label.type == "skeleton":
        svg = svg_with_node_names(label.svg, label.sublabels)
        etree.SubElement(element, "svg").text = clean(svg)
    return element


# --- reading --------------------------------------------------------------------------------


def _where(element: etree._Element) -> str:
    return f"<{element.tag}> on line {element.sourceline}"


def number(element: etree._Element, name: str, default: float | None = None) -> float:
    raw = element.get(name)
    if raw is None:
        if default is None:
            raise FormatError(f"{_where(element)} lacks {name!r}")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise FormatError(f"{_where(element)}: {name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise FormatError(f"{_where(element)}: {name}={raw!r} is not a finite number")
    return value


def integer(element: etree._Element, name: str, default: int | None = None) -> int:
    raw = element.get(name)
    if raw is None:
        if default is None:
            raise FormatError(f"{_where(element)} lacks {name!r}")
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise FormatError(f"{_where(element)}: {name}={raw!r} is not a whole number") from None


def boolean(element: etree._Element, name: str, default: bool = False) -> bool:
    raw = element.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise FormatError(f"{_where(element)}: {name}={raw!r} is not 0 or 1")


def read_geometry(element: etree._Element, shape_type: str) -> list[float]:
    """A shape's CVAT points from its XML attributes."""
    if shape_type == "rectangle":
        return [number(element, name) for name in ("xtl", "ytl", "xbr", "ybr")]
    if shape_type == "ellipse":
        cx, cy = number(element, "cx"), number(element, "cy")
        return [cx, cy, round(cx + number(element, "rx"), 2), round(cy - number(element, "ry"), 2)]
    if shape_type == "cuboid":
        return [number(element, name) for name in CUBOID_NAMES]
    if shape_type == "mask":
        return _read_mask(element)
    if shape_type == "skeleton":
        return []
    return read_points(element)


_SMALL_NUMBERS = {str(value): value for value in range(-1000, 10000)}


def whole_number(raw: str | None) -> int:
    """``int(raw)``, 0 for None (ValueError when not a whole number); small ones, such as
    z orders and groups, looked up rather than parsed."""
    if raw is None:
        return 0
    value = _SMALL_NUMBERS.get(raw)
    return int(raw) if value is None else value


PLAIN_TAGS = {"box": "rectangle", "polygon": "polygon", "polyline": "polyline", "points": "points"}
FLAGS = {"0": False, "1": True}
_POINT_PAIRS = re.compile(r"[^;,]*,[^;,]*(?:;[^;,]*,[^;,]*)*")


_FLOATS = msgspec.json.Decoder(list[float])


def plain_points(shape_type: str, fields: dict[str, str]) -> list[float] | None:
    """The points of a box, polygon, polyline or points shape from its XML attributes
    (KeyError or None when they are not all there and JSON numbers: `read_geometry` reads
    the rest)."""
    if shape_type == "rectangle":
        corners = f"{fields['xtl']},{fields['ytl']},{fields['xbr']},{fields['ybr']}"
        values = _json_numbers(corners)
        return values if values is not None and len(values) == 4 else None
    raw = fields["points"]
    if _POINT_PAIRS.fullmatch(raw) is None:
        return None
    return _json_numbers(raw.replace(";", ","))


def _json_numbers(raw: str) -> list[float] | None:
    """Comma-separated numbers, or None unless all are JSON numbers. Those are a subset of
    what float() reads, to the same values (but for "-0"); msgspec reads a list of them
    several times faster than float() one by one."""
    try:
        values = _FLOATS.decode(f"[{raw}]".encode())
    except msgspec.DecodeError:
        return None
    if 0.0 in values and "-0" in raw:
        return list(map(float, raw.split(",")))
    return values


def read_points(element: etree._Element) -> list[float]:
    raw = element.get("points")
    if raw is None:
        raise FormatError(f"{_where(element)} lacks 'points'")
    pairs = raw.split(";")
    if all(pair.count(",") == 1 for pair in pairs):
        try:
            values = [float(part) for part in ",".join(pairs).split(",")]
        except ValueError:
            values = []
        if values and all(map(math.isfinite, values)):
            return values
    return _read_points_checked(element, raw)


def _read_points_checked(element: etree._Element, raw: str) -> list[float]:
    """The points one by one, naming the first that is not a number (the slow path)."""
    values: list[float] = []
    for pair in raw.split(";"):
        parts = pair.split(",")
        if len(parts) != 2:
            raise FormatError(f"{_where(element)}: {pair!r} is not an x,y pair")
        for part in parts:
            try:
                value = float(part)
            except ValueError:
                raise FormatError(f"{_where(element)}: {part!r} is not a number") from None
            if not math.isfinite(value):
                raise FormatError(f"{_where(element)}: {part!r} is not a finite number")
            values.append(value)
    return values


_INTEGERS = msgspec.json.Decoder(list[int])


def _whole_numbers(raw: str) -> list[int] | None:
    """The comma-separated whole numbers in ``raw`` as int() reads them (at least one),
    or None; through msgspec when they are JSON numbers (a subset), as with points."""
    try:
        values = _INTEGERS.decode(f"[{raw}]".encode())
    except msgspec.DecodeError:
        values = []
    if values:
        return values
    try:
        return [int(part) for part in raw.split(",")]
    except ValueError:
        return None


def _read_mask(element: etree._Element) -> list[float]:
    raw = element.get("rle")
    if raw is None:
        raise FormatError(f"{_where(element)} lacks 'rle'")
    runs = _whole_numbers(raw)
    if runs is None:
        raise FormatError(f"{_where(element)}: the rle holds a non-number")
    left, top = integer(element, "left"), integer(element, "top")
    width, height = integer(element, "width"), integer(element, "height")
    if width <= 0 or height <= 0 or left < 0 or top < 0 or min(runs) < 0:
        raise FormatError(f"{_where(element)}: the mask's box or runs are negative")
    if sum(runs) != width * height:
        raise FormatError(
            f"{_where(element)}: the rle covers {sum(runs)} pixels, the box {width * height}"
        )
    return list(map(float, runs)) + [
        float(left),
        float(top),
        float(left + width - 1),
        float(top + height - 1),
    ]
