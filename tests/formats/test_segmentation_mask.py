"""Segmentation mask 1.1 export and import.

Carried: the pixels of rectangles (rotated ones too), polygons, masks and ellipses, by label
and instance (a group is one instance, labelled as its largest member). They come back as
polygons tracing each instance's outer border: an axis-aligned rectangle as the polygon of
its corners, any instance as polygons that paint the same pixels again (a re-export gives
the same PNGs). Not carried: attributes, occluded, z_order (only as painting order), tags,
track identity (tracks are painted frame by frame), holes, parts under 3 pixels, polylines,
points, cuboids, skeletons.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.annotations import LabeledData, Shape
from tests.formats import samples
from workers.formats.dataset import FormatError
from workers.formats.segmentation_mask import (
    export_segmentation_mask,
    import_segmentation_mask,
    voc_color,
)

GOLDEN = Path(__file__).parent / "golden" / "segmentation_mask"


def _shapes() -> list[Shape]:
    return [
        Shape("rectangle", samples.CAR, 0, [10.0, 20.0, 30.0, 40.0]),
        Shape("polygon", samples.PERSON, 0, [50.0, 10.0, 90.0, 10.0, 70.0, 50.0]),
        Shape("mask", samples.PERSON, 1, samples.mask_points()),
        Shape("ellipse", samples.CAR, 2, [50.0, 40.0, 60.0, 35.0], rotation=30.0),
        Shape("rectangle", samples.CAR, 3, [10.0, 10.0, 40.0, 30.0], rotation=45.0),
    ]


def _pngs(archive_bytes: bytes) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        return {
            name: cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_COLOR)
            for name in archive.namelist()
            if name.endswith(".png")
        }


def _import(tmp_path: Path, archive_bytes: bytes) -> LabeledData:
    path = samples.write(tmp_path, "upload.zip", archive_bytes)
    return import_segmentation_mask(path, samples.labels(), samples.frames())


def test_round_trip_paints_the_same_pixels(tmp_path: Path) -> None:
    original = LabeledData(shapes=_shapes())
    archive, warnings = samples.export_to_bytes(export_segmentation_mask, samples.dataset(original))
    assert warnings == []
    imported = _import(tmp_path, archive)
    assert all(s.type == "polygon" and s.source == "file" for s in imported.shapes)
    assert sorted((s.frame, s.label_id) for s in imported.shapes) == [
        (0, samples.CAR),
        (0, samples.PERSON),
        (1, samples.PERSON),
        (2, samples.CAR),
        (3, samples.CAR),
    ]
    box = next(s for s in imported.shapes if s.frame == 0 and s.label_id == samples.CAR)
    assert sorted(zip(box.points[0::2], box.points[1::2], strict=True)) == [
        (10.0, 20.0),
        (10.0, 40.0),
        (30.0, 20.0),
        (30.0, 40.0),
    ]
    again, _ = samples.export_to_bytes(export_segmentation_mask, samples.dataset(imported))
    first, second = _pngs(archive), _pngs(again)
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name


def test_layout_and_colors_follow_cvat() -> None:
    archive, _ = samples.export_to_bytes(
        export_segmentation_mask,
        samples.dataset(LabeledData(shapes=_shapes())),
        images=lambda index: (samples.frames()[index].name, b"x"),
    )
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        names = set(opened.namelist())
        labelmap = opened.read("labelmap.txt").decode()
        listed = opened.read("ImageSets/Segmentation/default.txt").decode().split()
    assert labelmap.splitlines() == [
        "# label:color_rgb:parts:actions",
        "background:0,0,0::",
        "car:255,0,0::",
        "person:0,255,0::",
        "body:255,255,0::",
        "scene:255,0,255::",
    ]
    assert listed == ["img0", "dir/img1", "img2", "img3", "img4"]
    assert {"SegmentationClass/dir/img1.png", "SegmentationObject/dir/img1.png"} <= names
    assert "JPEGImages/dir/img1.png" in names
    pngs = _pngs(archive)
    classes = pngs["SegmentationClass/img0.png"][..., ::-1]
    objects = pngs["SegmentationObject/img0.png"][..., ::-1]
    assert tuple(classes[30, 20]) == (255, 0, 0) and tuple(classes[20, 70]) == (0, 255, 0)
    assert tuple(classes[0, 0]) == (0, 0, 0)
    assert tuple(objects[30, 20]) == voc_color(1) == (128, 0, 0)
    assert tuple(objects[20, 70]) == voc_color(2) == (0, 128, 0)
    assert classes.shape == (80, 100, 3)


def test_the_voc_palette() -> None:
    assert [voc_color(i) for i in range(5)] == [
        (0, 0, 0),
        (128, 0, 0),
        (0, 128, 0),
        (128, 128, 0),
        (0, 0, 128),
    ]
    assert voc_color(255) == (224, 224, 192)


def test_unpainted_objects_are_reported() -> None:
    original = LabeledData(shapes=samples.every_shape(), tags=samples.tags())
    _, warnings = samples.export_to_bytes(export_segmentation_mask, samples.dataset(original))
    assert warnings[:5] == [
        "1 cuboid shapes were left out (masks do not carry them)",
        "1 points shapes were left out (masks do not carry them)",
        "1 polyline shapes were left out (masks do not carry them)",
        "1 skeleton shapes were left out (masks do not carry them)",
        "2 tags were left out (not carried)",
    ]


def test_a_group_is_one_instance_of_its_largest_label(tmp_path: Path) -> None:
    shapes = [
        Shape("rectangle", samples.CAR, 0, [0.0, 0.0, 20.0, 20.0], group=4),
        Shape("rectangle", samples.PERSON, 0, [40.0, 40.0, 45.0, 45.0], group=4),
    ]
    archive, _ = samples.export_to_bytes(
        export_segmentation_mask, samples.dataset(LabeledData(shapes=shapes))
    )
    objects = _pngs(archive)["SegmentationObject/img0.png"][..., ::-1]
    assert tuple(objects[10, 10]) == tuple(objects[42, 42]) == voc_color(1)
    imported = _import(tmp_path, archive)
    assert [s.label_id for s in imported.shapes] == [samples.CAR, samples.CAR]
    assert imported.shapes[0].group == imported.shapes[1].group != 0


def test_golden_grayscale_dataset_imports(tmp_path: Path) -> None:
    imported = _import(tmp_path, samples.zip_folder(GOLDEN))
    found = sorted((s.label_id, s.group != 0, s.points) for s in imported.shapes)
    assert found == [
        (samples.CAR, False, [5.0, 10.0, 5.0, 19.0, 14.0, 19.0, 14.0, 10.0]),
        (samples.PERSON, False, [20.0, 60.0, 20.0, 69.0, 29.0, 69.0, 29.0, 60.0]),
        (samples.PERSON, True, [50.0, 30.0, 50.0, 39.0, 59.0, 39.0, 59.0, 30.0]),
        (samples.PERSON, True, [70.0, 30.0, 70.0, 39.0, 74.0, 39.0, 74.0, 30.0]),
    ]
    assert all(s.frame == 0 for s in imported.shapes)


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


LABELMAP = b"background:0,0,0::\ncar:255,0,0::\n"
CAR_PNG = _png(np.full((80, 100, 3), (0, 0, 255), np.uint8))  # BGR of (255, 0, 0)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"SegmentationClass/img0.png": _png(np.zeros((8, 10), np.uint8))}, "is 10x8"),
        ({"SegmentationClass/img0.png": b"GIF89a" + bytes(30)}, "not a PNG"),
        ({"SegmentationClass/img0.png": _png(np.full((80, 100, 3), 7, np.uint8))}, "color"),
        ({"labelmap.txt": b"car:1,2::\n", "SegmentationClass/img0.png": CAR_PNG}, "r,g,b"),
        ({"labelmap.txt": b"car\n", "SegmentationClass/img0.png": CAR_PNG}, "line 1"),
        (
            {
                "labelmap.txt": LABELMAP.replace(b"car", b"truck"),
                "SegmentationClass/img0.png": CAR_PNG,
            },
            "'truck'",
        ),
        ({"labelmap.txt": LABELMAP, "SegmentationClass/other.png": CAR_PNG}, "item 'other'"),
        (
            {"labelmap.txt": LABELMAP + b"bus:255,0,0::\n", "SegmentationClass/img0.png": CAR_PNG},
            "one color",
        ),
        (
            {"labelmap.txt": LABELMAP, "SegmentationObject/img0.png": CAR_PNG},
            "no SegmentationClass",
        ),
        ({"labelmap.txt": LABELMAP}, "no SegmentationClass/ or SegmentationObject/"),
    ],
)
def test_bad_datasets_are_refused(tmp_path: Path, members: dict, message: str) -> None:
    path = samples.write(tmp_path, "bad.zip", samples.zip_members(members))
    with pytest.raises(FormatError, match=message):
        import_segmentation_mask(path, samples.labels(), samples.frames())


def test_a_bare_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="ZIP"):
        import_segmentation_mask(samples.write(tmp_path, "a.png", CAR_PNG), [], samples.frames())


def test_a_labelled_rgb_png_imports(tmp_path: Path) -> None:
    members = {"labelmap.txt": LABELMAP, "SegmentationClass/img0.png": CAR_PNG}
    path = samples.write(tmp_path, "a.zip", samples.zip_members(members))
    (shape,) = import_segmentation_mask(path, samples.labels(), samples.frames()).shapes
    assert (shape.label_id, shape.points) == (
        samples.CAR,
        [0.0, 0.0, 0.0, 79.0, 99.0, 79.0, 99.0, 0.0],
    )


def test_a_shape_outside_its_frame_is_reported() -> None:
    outside = Shape("rectangle", samples.CAR, 0, [200.0, 200.0, 300.0, 300.0])
    archive, warnings = samples.export_to_bytes(
        export_segmentation_mask, samples.dataset(LabeledData(shapes=[outside]))
    )
    assert warnings == ["a rectangle on frame 0 was left out: it covers no pixel of the frame"]
    assert not _pngs(archive)["SegmentationObject/img0.png"].any()
