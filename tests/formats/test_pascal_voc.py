"""PASCAL VOC 1.1 export and import.

Carried exactly: rectangles (label, occluded, the label's attributes, truncated/difficult
checkboxes, pose, rotation), tags (without attributes), rectangle tracks (per-frame objects
with track_id and keyframe, rebuilt on import). Polygons, masks and ellipses are painted into
the segmentation PNGs and come back as polygons painting the same pixels (see
test_segmentation_mask). Not carried: z_order, groups of rectangles, source, ids, polylines,
points, cuboids, skeletons, the attributes of tags and of painted shapes.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import msgspec
import pytest
from lxml import etree

from core.annotations import LabeledData, Shape
from core.labels import AttributeSpec
from tests.formats import samples
from tests.formats.test_hostile import BILLION_LAUGHS, EXTERNAL_DTD, EXTERNAL_ENTITY
from workers.formats.dataset import FormatError
from workers.formats.pascal_voc import export_pascal_voc, import_pascal_voc

GOLDEN = Path(__file__).parent / "golden" / "pascal_voc"
TRUNCATED, DIFFICULT, POSE = 15, 16, 17


def _labels() -> list:
    labels = samples.labels()
    labels[0].attributes += [
        AttributeSpec(TRUNCATED, "truncated", False, "checkbox", ["false"], "false"),
        AttributeSpec(DIFFICULT, "difficult", False, "checkbox", ["false"], "false"),
        AttributeSpec(POSE, "pose", False, "select", ["Unspecified", "Left"], "Unspecified"),
    ]
    return labels


def _import(tmp_path: Path, archive_bytes: bytes, labels: list | None = None) -> LabeledData:
    path = samples.write(tmp_path, "upload.zip", archive_bytes)
    return import_pascal_voc(path, labels or samples.labels(), samples.frames())


def _carried() -> LabeledData:
    box = next(s for s in samples.every_shape() if s.type == "rectangle")
    tags = [msgspec.structs.replace(t, attributes=[], group=0) for t in samples.tags()]
    return LabeledData(
        shapes=[msgspec.structs.replace(box, group=0, z_order=0)],
        tags=tags,
        tracks=[samples.box_track()],
    )


def test_round_trip_of_boxes_tags_and_box_tracks(tmp_path: Path) -> None:
    original = _carried()
    archive, warnings = samples.export_to_bytes(export_pascal_voc, samples.dataset(original))
    assert warnings == []
    assert samples.normalized(_import(tmp_path, archive)) == samples.normalized(original)


def test_polygons_come_back_through_the_segmentation_masks(tmp_path: Path) -> None:
    shapes = [
        Shape("polygon", samples.PERSON, 1, [10.0, 10.0, 30.0, 10.0, 30.0, 20.0, 10.0, 20.0]),
        Shape("mask", samples.CAR, 3, samples.mask_points()),
    ]
    archive, _ = samples.export_to_bytes(
        export_pascal_voc, samples.dataset(LabeledData(shapes=shapes))
    )
    imported = _import(tmp_path, archive)
    polygon, mask = sorted(imported.shapes, key=lambda s: s.frame)
    assert (polygon.type, polygon.label_id, polygon.frame) == ("polygon", samples.PERSON, 1)
    assert sorted(zip(polygon.points[0::2], polygon.points[1::2], strict=True)) == [
        (10.0, 10.0),
        (10.0, 20.0),
        (30.0, 10.0),
        (30.0, 20.0),
    ]
    assert (mask.type, mask.label_id, mask.frame) == ("polygon", samples.CAR, 3)


def test_layout_follows_datumaro_voc() -> None:
    data = samples.dataset(_carried())
    data.labels = _labels()
    archive, _ = samples.export_to_bytes(
        export_pascal_voc, data, images=lambda index: (samples.frames()[index].name, b"x")
    )
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        names = set(opened.namelist())
        root = etree.fromstring(opened.read("Annotations/img0.xml"))
        main = opened.read("ImageSets/Main/default.txt").decode().split()
        scene = opened.read("ImageSets/Main/scene_default.txt").decode().splitlines()
        labelmap = opened.read("labelmap.txt").decode().splitlines()
    assert {"Annotations/dir/img1.xml", "JPEGImages/dir/img1.png"} <= names
    assert {"SegmentationClass/img0.png", "ImageSets/Segmentation/default.txt"} <= names
    assert main == ["img0", "dir/img1", "img2", "img3", "img4"]
    assert scene == ["img0  1", "dir/img1  1", "img2 -1", "img3 -1", "img4 -1"]
    assert labelmap[1:4] == ["background:0,0,0::", "car:128,0,0::", "person:0,128,0::"]
    assert root.findtext("filename") == "img0.jpg"
    assert (root.findtext("size/width"), root.findtext("size/height")) == ("100", "80")
    box = next(o for o in root.iterfind("object") if o.findtext("occluded") == "1")
    assert box.findtext("name") == "car"
    assert (box.findtext("truncated"), box.findtext("difficult")) == ("0", "0")
    assert box.findtext("pose") == "Unspecified"
    assert [box.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == [
        "10.5",
        "20.25",
        "30.0",
        "40.0",
    ]
    extras = {a.findtext("name"): a.findtext("value") for a in box.iterfind("attributes/*")}
    assert extras == {
        "model": "b",
        "speed": "5",
        "parked": "true",
        "note": "hi",
        "rotation": "15.0",
    }


def test_what_is_not_carried_is_reported() -> None:
    original = LabeledData(shapes=samples.every_shape(), tags=samples.tags())
    _, warnings = samples.export_to_bytes(export_pascal_voc, samples.dataset(original))
    assert warnings == [
        "1 cuboid shapes were left out (VOC does not carry them)",
        "1 points shapes were left out (VOC does not carry them)",
        "1 polyline shapes were left out (VOC does not carry them)",
        "1 skeleton shapes were left out (VOC does not carry them)",
        "the attributes of tags were left out (VOC does not carry them)",
    ]


def test_golden_dataset_imports(tmp_path: Path) -> None:
    imported = _import(tmp_path, samples.zip_folder(GOLDEN), _labels())
    car, person, later = sorted(imported.shapes, key=lambda s: (s.frame, s.label_id))
    assert (car.label_id, car.frame, car.points) == (samples.CAR, 0, [10.0, 20.5, 40.0, 60.0])
    assert car.occluded
    assert {a.spec_id: a.value for a in car.attributes} == {
        samples.MODEL: "b",
        samples.PARKED: "true",
        TRUNCATED: "true",
        DIFFICULT: "false",
        POSE: "Left",
    }
    assert (person.label_id, person.points, person.occluded) == (
        samples.PERSON,
        [1.0, 2.0, 3.0, 4.0],
        False,
    )
    assert (later.frame, later.points) == (3, [5.0, 5.0, 15.0, 25.0])
    assert [(t.label_id, t.frame) for t in imported.tags] == [(samples.SCENE, 0)]


def test_a_flat_archive_of_xml_files_imports(tmp_path: Path) -> None:
    content = (GOLDEN / "Annotations" / "img0.xml").read_bytes()
    imported = _import(tmp_path, samples.zip_members({"img0.xml": content}))
    assert len(imported.shapes) == 2


OBJECT = b"<object><name>%s</name><bndbox><xmin>%s</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"


def _document(name: bytes = b"car", xmin: bytes = b"1") -> bytes:
    return b"<annotation><filename>img0.jpg</filename>" + OBJECT % (name, xmin) + b"</annotation>"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_document(b"truck"), "'truck'"),
        (_document(xmin=b"abc"), "'abc' is not a number"),
        (_document(xmin=b"inf"), "not a finite number"),
        (_document(xmin=b"9"), "ends before it starts"),
        (b"<annotation><object><name>car</name></object></annotation>", "no <bndbox>"),
        (b"<annotation><object>", "malformed"),
        (b"<other/>", "root is <other>"),
        (BILLION_LAUGHS.replace(b"annotations", b"annotation"), "declares entities"),
        (EXTERNAL_ENTITY.replace(b"annotations", b"annotation"), "declares entities"),
        (EXTERNAL_DTD.replace(b"annotations", b"annotation"), "external DTD"),
    ],
)
def test_bad_annotation_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        _import(tmp_path, samples.zip_members({"Annotations/img0.xml": content}))


def test_an_unmatched_image_is_refused(tmp_path: Path) -> None:
    content = (
        b"<annotation><filename>nowhere.jpg</filename>" + OBJECT % (b"car", b"1") + b"</annotation>"
    )
    with pytest.raises(FormatError, match="'nowhere.jpg'"):
        _import(tmp_path, samples.zip_members({"Annotations/other.xml": content}))


def test_a_tag_list_of_an_unknown_label_is_refused(tmp_path: Path) -> None:
    members = {"ImageSets/Main/truck_default.txt": b"img0  1\n"}
    with pytest.raises(FormatError, match="'truck_default'"):
        _import(tmp_path, samples.zip_members(members))


def test_a_bare_xml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="ZIP"):
        import_pascal_voc(samples.write(tmp_path, "a.xml", _document()), [], samples.frames())
