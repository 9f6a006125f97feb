"""Sample labels, frames and annotations for the format tests, and comparison helpers."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import msgspec

from core.annotations import AttributeValue, LabeledData, Shape, Tag, Track, TrackedShape
from core.labels import AttributeSpec, LabelSpec
from workers.formats.dataset import FrameInfo, TaskDataset

# label ids
CAR, PERSON, BODY, HEAD, HAND, SCENE = 1, 2, 4, 41, 42, 5
# attribute ids of car
MODEL, SPEED, PARKED, NOTE = 11, 12, 13, 14
LOOK, WEATHER = 44, 51

SVG = (
    '<line x1="10" y1="10" x2="20" y2="20" data-type="edge" data-node-from="1" '
    'data-node-to="2"></line><circle r="1" cx="10" cy="10" data-type="element node" '
    'data-element-id="1" data-node-id="1" data-label-id="41"></circle><circle r="1" cx="20" '
    'cy="20" data-type="element node" data-element-id="2" data-node-id="2" '
    'data-label-id="42"></circle>'
)


def labels() -> list[LabelSpec]:
    car = LabelSpec(
        id=CAR,
        name="car",
        color="#ff0000",
        type="any",
        attributes=[
            AttributeSpec(MODEL, "model", False, "select", ["a", "b"], "a"),
            AttributeSpec(SPEED, "speed", True, "number", ["0", "100", "1"], "0"),
            AttributeSpec(PARKED, "parked", True, "checkbox", ["false"], "false"),
            AttributeSpec(NOTE, "note", False, "text", [""], ""),
        ],
    )
    person = LabelSpec(id=PERSON, name="person", color="#00ff00", type="any")
    head = LabelSpec(
        id=HEAD,
        name="head",
        color="#0000ff",
        type="points",
        attributes=[AttributeSpec(LOOK, "look", False, "select", ["left", "right"], "left")],
        has_parent=True,
    )
    hand = LabelSpec(id=HAND, name="hand", color="#00ffff", type="points", has_parent=True)
    body = LabelSpec(
        id=BODY, name="body", color="#ffff00", type="skeleton", sublabels=[head, hand], svg=SVG
    )
    scene = LabelSpec(
        id=SCENE,
        name="scene",
        color="#ff00ff",
        type="tag",
        attributes=[AttributeSpec(WEATHER, "weather", False, "radio", ["sun", "rain"], "sun")],
    )
    return [car, person, body, scene]


def frames() -> list[FrameInfo]:
    names = ["img0.jpg", "dir/img1.png", "img2.jpg", "img3.jpg", "img4.jpg"]
    return [FrameInfo(index, name, 100, 80) for index, name in enumerate(names)]


def car_attributes(model: str, speed: str, parked: str, note: str) -> list[AttributeValue]:
    return [
        AttributeValue(MODEL, model),
        AttributeValue(SPEED, speed),
        AttributeValue(PARKED, parked),
        AttributeValue(NOTE, note),
    ]


def mask_points() -> list[float]:
    """A 3x2 mask at (5, 6): rows 0 1 1 / 1 1 0, i.e. runs 1, 4, 1."""
    return [1.0, 4.0, 1.0, 5.0, 6.0, 7.0, 7.0]


CUBOID = [float(v) for v in range(10, 42, 2)]


def every_shape() -> list[Shape]:
    return [
        Shape(
            "rectangle",
            CAR,
            0,
            [10.5, 20.25, 30.0, 40.0],
            occluded=True,
            z_order=2,
            rotation=15.0,
            group=1,
            attributes=car_attributes("b", "5", "true", "hi"),
            id=100,
        ),
        Shape("polygon", PERSON, 0, [1.0, 2.0, 10.0, 2.0, 10.0, 12.0], group=1, id=101),
        Shape("polyline", PERSON, 1, [0.0, 0.0, 5.0, 5.0], z_order=1, id=102),
        Shape("points", PERSON, 1, [3.0, 3.0, 4.0, 4.0, 5.5, 5.5], id=103),
        Shape(
            "ellipse",
            CAR,
            2,
            [50.0, 40.0, 60.0, 35.0],
            rotation=30.0,
            attributes=car_attributes("a", "0", "false", ""),
        ),
        Shape("cuboid", PERSON, 2, CUBOID, occluded=True),
        Shape("mask", PERSON, 3, mask_points(), z_order=3),
        Shape(
            "skeleton",
            BODY,
            4,
            [],
            elements=[
                Shape("points", HEAD, 4, [10.0, 10.0], attributes=[AttributeValue(LOOK, "right")]),
                Shape("points", HAND, 4, [20.0, 20.0], outside=True),
            ],
        ),
    ]


def tags() -> list[Tag]:
    return [
        Tag(SCENE, 0, attributes=[AttributeValue(WEATHER, "rain")], id=7),
        Tag(SCENE, 1, group=2, attributes=[AttributeValue(WEATHER, "sun")]),
    ]


def box_track() -> Track:
    """A car track: keyframes 0 and 2, outside from 3."""
    first = car_attributes("a", "1", "false", "t")
    later = car_attributes("a", "3", "true", "t")
    return Track(
        label_id=CAR,
        frame=0,
        shapes=[
            TrackedShape("rectangle", 0, [0.0, 0.0, 10.0, 10.0], attributes=mutable(first)),
            TrackedShape(
                "rectangle", 2, [10.0, 10.0, 20.0, 20.0], occluded=True, attributes=mutable(later)
            ),
            TrackedShape(
                "rectangle",
                3,
                [10.0, 10.0, 20.0, 20.0],
                occluded=True,
                outside=True,
                attributes=mutable(later),
            ),
        ],
        attributes=[a for a in first if a.spec_id in (MODEL, NOTE)],
        id=300,
    )


def mutable(values: list[AttributeValue]) -> list[AttributeValue]:
    return [a for a in values if a.spec_id in (SPEED, PARKED)]


def polygon_track() -> Track:
    """A person polygon track that disappears on frame 2 and comes back on frame 3."""
    return Track(
        label_id=PERSON,
        frame=1,
        group=0,
        shapes=[
            TrackedShape("polygon", 1, [1.0, 1.0, 9.0, 1.0, 9.0, 9.0]),
            TrackedShape("polygon", 2, [1.0, 1.0, 9.0, 1.0, 9.0, 9.0], outside=True),
            TrackedShape("polygon", 3, [2.0, 2.0, 8.0, 2.0, 8.0, 8.0]),
        ],
    )


def skeleton_track() -> Track:
    return Track(
        label_id=BODY,
        frame=1,
        shapes=[TrackedShape("skeleton", 1, []), TrackedShape("skeleton", 3, [])],
        elements=[
            Track(
                HEAD,
                1,
                shapes=[
                    TrackedShape("points", 1, [1.0, 1.0]),
                    TrackedShape("points", 3, [3.0, 3.0]),
                ],
                attributes=[AttributeValue(LOOK, "right")],
            ),
            Track(
                HAND,
                1,
                shapes=[
                    TrackedShape("points", 1, [2.0, 2.0]),
                    TrackedShape("points", 3, [4.0, 4.0], outside=True),
                ],
            ),
        ],
    )


def dataset(data: LabeledData, **extra: object) -> TaskDataset:
    return TaskDataset(
        name="sample task", labels=labels(), frames=frames(), annotations=data, **extra
    )


def export_to_bytes(
    exporter: Callable[..., list[str]],
    data: TaskDataset,
    images: Callable[[int], tuple[str, bytes]] | None = None,
) -> tuple[bytes, list[str]]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings = exporter(data, archive, images=images)
    return buffer.getvalue(), warnings


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def normalized(data: LabeledData) -> dict:
    """Builtins without ids, sources as an import sets them, objects in a stable order."""
    plain = msgspec.to_builtins(data)
    plain = _strip(plain)
    for key in ("tags", "shapes", "tracks"):
        plain[key] = sorted(plain[key], key=_order)
    plain.pop("version", None)
    return plain


def _strip(value: object) -> object:
    if isinstance(value, dict):
        return {k: ("file" if k == "source" else _strip(v)) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _order(item: dict) -> tuple:
    return (item.get("frame"), item.get("label_id"), item.get("type", ""), str(item))


def zip_folder(folder: Path) -> bytes:
    """A ZIP of every file under ``folder``, named relative to it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def zip_members(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def numbered_frames(start: int = 10, step: int = 2) -> list[FrameInfo]:
    """The sample frames as a task with a start frame and a frame step numbers them."""
    return [FrameInfo(f.index, f.name, f.width, f.height, start + f.index * step) for f in frames()]
