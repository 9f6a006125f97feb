"""The YOLO family: YOLO 1.1 and the Ultralytics YOLO formats, export and import.

What each format carries back (coordinates to 1e-2 px after the six-decimal relative form):
- YOLO 1.1 and Detection: unrotated rectangles (type, label, frame, points);
- Oriented Bounding Boxes: rectangles with their rotation;
- Segmentation: polygons (masks come back as the polygons of their outlines);
- Pose: skeletons with each point's position, occluded and outside;
- Classification: tags (label and frame).
Tracks come back as one shape per visible frame. Never carried: attributes, occluded and
z_order of shapes, groups, ids, score; import sets source "file".
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import msgspec
import pytest
import yaml

from core.annotations import LabeledData, Shape, Tag
from tests.formats import samples
from workers.formats import yolo, yolo_classification, yolo_import
from workers.formats.dataset import FormatError
from workers.formats.registry import find_exporter, find_importer
from workers.formats.tracks import closed_at, flatten

GOLDEN = Path(__file__).parent / "golden" / "yolo"


def _round_trip(tmp_path: Path, name: str, original: LabeledData) -> tuple[LabeledData, list[str]]:
    archive, warnings = samples.export_to_bytes(
        find_exporter(name).exporter, samples.dataset(original)
    )
    path = samples.write(tmp_path, "upload.zip", archive)
    return find_importer(name).importer(path, samples.labels(), samples.frames()), warnings


def _geometry(shape: Shape) -> tuple:
    elements = sorted(
        (e.label_id, tuple(round(v, 2) for v in e.points), e.occluded, e.outside)
        for e in shape.elements
    )
    points = tuple(round(v, 2) for v in shape.points)
    rotation = round(shape.rotation % 360, 2) % 360
    return (shape.type, shape.label_id, shape.frame, points, rotation, tuple(elements))


def _carried(data: LabeledData, types: tuple[str, ...]) -> list[tuple]:
    flat, _ = flatten(data, samples.frames()[-1].index)
    return sorted(_geometry(item.shape) for item in flat if item.shape.type in types)


def _zip_folder(tmp_path: Path, folder: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return samples.write(tmp_path, f"{folder.name}.zip", buffer.getvalue())


def _members(archive: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return {n: opened.read(n).decode() for n in opened.namelist() if not n.endswith(".png")}


def _unrotated(shapes: list[Shape]) -> list[Shape]:
    return [msgspec.structs.replace(s, rotation=0.0) for s in shapes]


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["YOLO 1.1", "Ultralytics YOLO Detection 1.0"])
def test_boxes_round_trip(tmp_path: Path, name: str) -> None:
    boxes = _unrotated([s for s in samples.every_shape() if s.type == "rectangle"])
    original = LabeledData(shapes=boxes, tracks=[samples.box_track()])
    imported, _ = _round_trip(tmp_path, name, original)
    assert _carried(imported, ("rectangle",)) == _carried(original, ("rectangle",))
    assert all(s.source == "file" and not s.attributes for s in imported.shapes)
    assert len(imported.shapes) == 4  # the box and three visible frames of the track


def test_oriented_boxes_round_trip_with_rotation(tmp_path: Path) -> None:
    rotated = [s for s in samples.every_shape() if s.type == "rectangle"]
    turned = msgspec.structs.replace(rotated[0], rotation=200.0, frame=3)
    original = LabeledData(shapes=[*rotated, turned], tracks=[samples.box_track()])
    imported, _ = _round_trip(tmp_path, "Ultralytics YOLO Oriented Bounding Boxes 1.0", original)
    assert _carried(imported, ("rectangle",)) == _carried(original, ("rectangle",))


def test_polygons_round_trip_and_masks_become_polygons(tmp_path: Path) -> None:
    polygon = next(s for s in samples.every_shape() if s.type == "polygon")
    mask = next(s for s in samples.every_shape() if s.type == "mask")
    original = LabeledData(shapes=[polygon], tracks=[samples.polygon_track()])
    name = "Ultralytics YOLO Segmentation 1.0"
    imported, warnings = _round_trip(tmp_path, name, original)
    assert warnings == []
    assert _carried(imported, ("polygon",)) == _carried(original, ("polygon",))
    from_mask, _ = _round_trip(tmp_path, name, LabeledData(shapes=[mask]))
    [outline] = from_mask.shapes
    assert (outline.type, outline.label_id, outline.frame) == ("polygon", mask.label_id, 3)
    xs, ys = outline.points[0::2], outline.points[1::2]
    assert (min(xs), min(ys), max(xs), max(ys)) == pytest.approx((5, 6, 8, 8), abs=1.01)


def test_skeletons_round_trip_with_visibility(tmp_path: Path) -> None:
    skeleton = next(s for s in samples.every_shape() if s.type == "skeleton")
    occluded_head = msgspec.structs.replace(
        skeleton,
        frame=2,
        elements=[msgspec.structs.replace(skeleton.elements[0], occluded=True, attributes=[])],
    )
    original = LabeledData(shapes=[skeleton, occluded_head], tracks=[samples.skeleton_track()])
    imported, _ = _round_trip(tmp_path, "Ultralytics YOLO Pose 1.0", original)

    def plain(data: LabeledData) -> list[tuple]:
        flat, _ = flatten(data, 4)
        result = []
        for item in flat:
            nodes = {e.label_id: e for e in item.shape.elements}
            elements = tuple(
                (
                    node,
                    tuple(round(v, 2) for v in nodes[node].points),
                    nodes[node].occluded,
                    nodes[node].outside,
                )
                if node in nodes
                else (node, None)
                for node in (samples.HEAD, samples.HAND)
            )
            result.append((item.shape.label_id, item.shape.frame, elements))
        return sorted(result, key=str)

    expected = plain(original)
    # a skeleton point missing on a frame is written as outside at 0, 0
    expected = [
        (
            label,
            frame,
            tuple(e if e[1] is not None else (e[0], (0.0, 0.0), False, True) for e in elements),
        )
        for label, frame, elements in expected
    ]
    assert plain(imported) == expected


def test_tags_round_trip_through_classification(tmp_path: Path) -> None:
    original = LabeledData(tags=samples.tags())
    imported, warnings = _round_trip(tmp_path, "Ultralytics YOLO Classification 1.0", original)
    assert [(t.label_id, t.frame) for t in imported.tags] == [
        (t.label_id, t.frame) for t in original.tags
    ]
    assert warnings == ["tag attributes were left out (the format does not carry attributes)"]


def test_classification_with_images_lays_out_label_folders(tmp_path: Path) -> None:
    original = LabeledData(tags=samples.tags())
    archive, _ = samples.export_to_bytes(
        yolo_classification.export_classification,
        samples.dataset(original),
        images=lambda index: (samples.frames()[index].name, b"image%d" % index),
    )
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        names = sorted(opened.namelist())
    assert names == ["train/labels.json", "train/scene/dir/img1.png", "train/scene/img0.jpg"]
    without_json = io.BytesIO()
    with zipfile.ZipFile(without_json, "w") as out, zipfile.ZipFile(io.BytesIO(archive)) as src:
        for name in names[1:]:
            out.writestr(name, src.read(name))
    path = samples.write(tmp_path, "folders.zip", without_json.getvalue())
    imported = yolo_classification.import_classification(path, samples.labels(), samples.frames())
    assert sorted((t.label_id, t.frame) for t in imported.tags) == [
        (samples.SCENE, 0),
        (samples.SCENE, 1),
    ]


# --- what is written ------------------------------------------------------------------------


def test_yolo_layout_follows_cvat() -> None:
    boxes = _unrotated([s for s in samples.every_shape() if s.type == "rectangle"])
    archive, _ = samples.export_to_bytes(
        yolo.export_yolo, samples.dataset(LabeledData(shapes=boxes))
    )
    members = _members(archive)
    assert set(members) == {
        "obj.names", "obj.data", "train.txt", "obj_train_data/img0.txt",
        "obj_train_data/dir/img1.txt", "obj_train_data/img2.txt", "obj_train_data/img3.txt",
        "obj_train_data/img4.txt",
    }  # fmt: skip
    assert members["obj.names"] == "car\nperson\nbody\nscene\n"
    assert members["obj.data"] == (
        "classes = 4\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n"
    )
    assert members["train.txt"].splitlines()[1] == "data/obj_train_data/dir/img1.png"
    # (10.5, 20.25)-(30, 40) on 100x80
    assert members["obj_train_data/img0.txt"] == "0 0.202500 0.376563 0.195000 0.246875\n"


def test_ultralytics_layout_follows_cvat() -> None:
    skeleton = next(s for s in samples.every_shape() if s.type == "skeleton")
    archive, _ = samples.export_to_bytes(
        yolo.export_pose,
        samples.dataset(LabeledData(shapes=[skeleton]), subset="Validation"),
        images=lambda index: ("frame.jpg", b"x"),
    )
    members = _members(archive)
    assert "images/Validation/img4.jpg" in members and "images/Validation/dir/img1.jpg" in members
    assert yaml.safe_load(members["data.yaml"]) == {
        "path": ".", "Validation": "Validation.txt", "kpt_shape": [2, 3], "names": {0: "body"},
    }  # fmt: skip
    assert members["Validation.txt"].splitlines()[0] == "images/Validation/img0.jpg"
    # the box spans the visible points only: head (10, 10); hand (20, 20) is outside
    assert members["labels/Validation/img4.txt"] == (
        "0 0.100000 0.125000 0.000000 0.000000 0.100000 0.125000 2 0.200000 0.250000 0\n"
    )


def test_what_is_not_carried_is_reported() -> None:
    original = LabeledData(shapes=samples.every_shape(), tags=samples.tags())
    _, warnings = samples.export_to_bytes(yolo.export_detection, samples.dataset(original))
    assert warnings == [
        "1 cuboid shapes were left out (Ultralytics YOLO Detection does not carry them)",
        "1 ellipse shapes were left out (Ultralytics YOLO Detection does not carry them)",
        "1 mask shapes were left out (Ultralytics YOLO Detection does not carry them)",
        "1 points shapes were left out (Ultralytics YOLO Detection does not carry them)",
        "1 polygon shapes were left out (Ultralytics YOLO Detection does not carry them)",
        "1 polyline shapes were left out (Ultralytics YOLO Detection does not carry them)",
        "1 rotated rectangle shapes were left out (Ultralytics YOLO Detection does not carry them)",
        "1 skeleton shapes were left out (Ultralytics YOLO Detection does not carry them)",
        "2 tags were left out (Ultralytics YOLO Detection does not carry them)",
        "the attributes of 1 shapes were left out (Ultralytics YOLO Detection does not carry attributes)",
    ]
    boxes = _unrotated([s for s in samples.every_shape() if s.type == "rectangle"])
    _, warnings = samples.export_to_bytes(
        yolo.export_yolo, samples.dataset(LabeledData(shapes=boxes))
    )
    assert warnings == ["the attributes of 1 shapes were left out (YOLO does not carry attributes)"]


# --- golden files ---------------------------------------------------------------------------


def _golden(tmp_path: Path, folder: str, name: str) -> LabeledData:
    path = _zip_folder(tmp_path, GOLDEN / folder)
    return find_importer(name).importer(path, samples.labels(), samples.frames())


def _box(label: int, frame: int, points: list[float], rotation: float = 0.0) -> tuple:
    return _geometry(Shape("rectangle", label, frame, points, rotation=rotation))


def test_golden_yolo(tmp_path: Path) -> None:
    imported = _golden(tmp_path, "darknet", "YOLO 1.1")
    assert _carried(imported, ("rectangle",)) == sorted([
        _box(samples.CAR, 0, [40.0, 30.0, 60.0, 50.0]),
        _box(samples.PERSON, 0, [0.0, 0.0, 20.0, 20.0]),
        _box(samples.PERSON, 1, [0.0, 0.0, 50.0, 80.0]),
    ])  # fmt: skip


def test_golden_detection_matches_a_frame_number(tmp_path: Path) -> None:
    imported = _golden(tmp_path, "detection", "Ultralytics YOLO Detection 1.0")
    assert _carried(imported, ("rectangle",)) == sorted([
        _box(samples.PERSON, 0, [40.0, 30.0, 60.0, 50.0]),
        _box(samples.CAR, 3, [0.0, 0.0, 10.0, 10.0]),
    ])  # fmt: skip


def test_golden_oriented(tmp_path: Path) -> None:
    imported = _golden(tmp_path, "oriented", "Ultralytics YOLO Oriented Bounding Boxes 1.0")
    half = math.hypot(10, 10) / 2
    assert _carried(imported, ("rectangle",)) == sorted([
        _box(samples.CAR, 2, [40.0, 30.0, 60.0, 50.0]),
        _box(samples.PERSON, 2, [50 - half, 30 - half, 50 + half, 30 + half], 45.0),
    ])  # fmt: skip


def test_golden_segmentation(tmp_path: Path) -> None:
    imported = _golden(tmp_path, "segmentation", "Ultralytics YOLO Segmentation 1.0")
    assert _carried(imported, ("polygon",)) == [
        _geometry(Shape("polygon", samples.PERSON, 4, [10.0, 10.0, 30.0, 10.0, 30.0, 40.0]))
    ]


def test_golden_pose(tmp_path: Path) -> None:
    [skeleton] = _golden(tmp_path, "pose", "Ultralytics YOLO Pose 1.0").shapes
    assert (skeleton.type, skeleton.label_id, skeleton.frame) == ("skeleton", samples.BODY, 3)
    assert [(e.label_id, e.points, e.occluded, e.outside) for e in skeleton.elements] == [
        (samples.HEAD, [10.0, 10.0], False, False),
        (samples.HAND, [20.0, 20.0], True, False),
    ]


def test_golden_classification(tmp_path: Path) -> None:
    imported = _golden(tmp_path, "classification", "Ultralytics YOLO Classification 1.0")
    assert sorted((t.label_id, t.frame) for t in imported.tags) == [
        (samples.CAR, 1), (samples.SCENE, 0), (samples.SCENE, 1),
    ]  # fmt: skip
    assert imported.tags[0] == Tag(samples.SCENE, 0, source="file")


# --- refusals -------------------------------------------------------------------------------


def _zip(tmp_path: Path, members: dict[str, str | bytes]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return samples.write(tmp_path, "bad.zip", buffer.getvalue())


DETECTION_YAML = "names:\n  0: car\n"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (
            {"data.yaml": DETECTION_YAML, "labels/train/img0.txt": "0 0.5 nan 0.1 0.1"},
            "not a finite number",
        ),
        (
            {"data.yaml": DETECTION_YAML, "labels/train/img0.txt": "0 0.5 abc 0.1 0.1"},
            "'abc' is not a number",
        ),
        (
            {"data.yaml": DETECTION_YAML, "labels/train/img0.txt": "0 0.5 0.5 0.1"},
            "expected 'class cx cy w h'",
        ),
        (
            {"data.yaml": DETECTION_YAML, "labels/train/img0.txt": "7 0.5 0.5 0.1 0.1"},
            "class 7 has no name",
        ),
        (
            {"data.yaml": DETECTION_YAML, "labels/train/img0.txt": "x 0.5 0.5 0.1 0.1"},
            "not a whole number",
        ),
        ({"data.yaml": "names:\n  0: truck\n"}, "label 'truck' does not exist"),
        (
            {"data.yaml": DETECTION_YAML, "labels/train/nope.txt": "0 0.5 0.5 0.1 0.1"},
            "does not match any frame",
        ),
        ({"data.yaml": "names: [car\n"}, "not valid YAML"),
        ({"data.yaml": "- a\n- b\n"}, "not a YAML mapping"),
        ({"data.yaml": "names: {car: 0}\n"}, "is not number: name"),
        ({"labels/train/img0.txt": "0 0.5 0.5 0.1 0.1"}, "no data.yaml"),
        (
            {
                "data.yaml": DETECTION_YAML,
                "labels/train/img0.txt": b"\xff\xfe\x00bad",
            },
            "not UTF-8",
        ),
    ],
)
def test_malformed_detection_files_are_refused(
    tmp_path: Path, members: dict[str, str], message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        yolo_import.import_detection(_zip(tmp_path, members), samples.labels(), samples.frames())


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"obj_train_data/img0.txt": "0 0.5 0.5 0.1 0.1"}, "no obj.names"),
        ({"obj.names": "car\n", "obj_train_data/img0.txt": "0 0.5 0.5 -0.1 0.1"}, "negative size"),
        ({"obj.names": "plane\n"}, "label 'plane' does not exist"),
    ],
)
def test_malformed_yolo_files_are_refused(
    tmp_path: Path, members: dict[str, str], message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        yolo_import.import_yolo(_zip(tmp_path, members), samples.labels(), samples.frames())


def test_malformed_pose_and_oriented_lines_are_refused(tmp_path: Path) -> None:
    pose = {"data.yaml": "kpt_shape: [2, 3]\nnames: {0: body}\n"}
    with pytest.raises(FormatError, match="visibility 5"):
        yolo_import.import_pose(
            _zip(tmp_path, {**pose, "labels/t/img0.txt": "0 .5 .5 .1 .1 .1 .1 5 .2 .2 2"}),
            samples.labels(), samples.frames(),
        )  # fmt: skip
    with pytest.raises(FormatError, match="kpt_shape"):
        yolo_import.import_pose(
            _zip(tmp_path, {"data.yaml": "names: {0: body}\n"}), samples.labels(), samples.frames()
        )
    with pytest.raises(FormatError, match="is not a skeleton"):
        yolo_import.import_pose(
            _zip(tmp_path, {"data.yaml": "kpt_shape: [2, 3]\nnames: {0: car}\n"}),
            samples.labels(),
            samples.frames(),
        )
    with pytest.raises(FormatError, match="4 corners"):
        yolo_import.import_oriented(
            _zip(tmp_path, {"data.yaml": DETECTION_YAML, "labels/t/img0.txt": "0 .1 .1 .2 .2"}),
            samples.labels(), samples.frames(),
        )  # fmt: skip


def test_archive_bombs_are_refused(tmp_path: Path) -> None:
    bomb = {"data.yaml": DETECTION_YAML, "labels/train/img0.txt": bytes(8 << 20)}
    for importer in (
        yolo_import.import_detection,
        yolo_import.import_yolo,
        yolo_classification.import_classification,
    ):
        with pytest.raises(FormatError, match="archive bomb"):
            importer(_zip(tmp_path, bomb), samples.labels(), samples.frames())


def test_zip_slip_and_unknown_classification_labels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="zip slip"):
        yolo_import.import_yolo(
            _zip(tmp_path, {"obj.names": "car\n", "../img0.txt": ""}),
            samples.labels(),
            samples.frames(),
        )
    with pytest.raises(FormatError, match="zip slip"):
        yolo_classification.import_classification(
            _zip(tmp_path, {"../train/car/img0.jpg": "x"}), samples.labels(), samples.frames()
        )
    with pytest.raises(FormatError, match="label 'dog' does not exist"):
        yolo_classification.import_classification(
            _zip(tmp_path, {"train/labels.json": json.dumps({"img0": ["dog"]})}),
            samples.labels(),
            samples.frames(),
        )
    with pytest.raises(FormatError, match="not given a list"):
        yolo_classification.import_classification(
            _zip(tmp_path, {"train/labels.json": json.dumps({"img0": "car"})}),
            samples.labels(),
            samples.frames(),
        )


def test_a_job_piece_of_a_track_ends_at_the_job() -> None:
    piece = msgspec.structs.replace(
        samples.skeleton_track(),
        shapes=samples.skeleton_track().shapes[:1],
        elements=[
            msgspec.structs.replace(e, shapes=e.shapes[:1])
            for e in samples.skeleton_track().elements
        ],
    )
    closed = closed_at(piece, 2)
    assert [(s.frame, s.outside) for s in closed.shapes] == [(1, False), (3, True)]
    assert all(
        [(s.frame, s.outside) for s in e.shapes] == [(1, False), (3, True)] for e in closed.elements
    )
    flat, _ = flatten(LabeledData(tracks=[closed]), 4)
    assert [item.shape.frame for item in flat] == [1, 2]
    ended = samples.box_track()  # already outside from frame 3
    assert closed_at(ended, 3).shapes == ended.shapes
