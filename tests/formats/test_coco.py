"""COCO 1.0 export and import.

Carried: rectangles (with rotation in attributes), polygons, masks (as crowd RLE), label
attributes, occluded, score, tracks of those shapes (as per-frame annotations with track_id
and keyframe). Not carried: polylines, points, cuboids, skeletons, tags, z_order, source
(import sets "file"), ids; ellipses come back as masks; shapes grouped on a frame are
merged into one instance (boxes absorbed into its bbox); group numbers are renumbered; a
missing attribute comes back with the label's default value.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from core.annotations import LabeledData, Shape
from tests.formats import samples
from workers.formats import masks
from workers.formats.coco import export_coco, import_coco
from workers.formats.dataset import FormatError
from workers.formats.masks import cvat_mask_bitmap

GOLDEN = Path(__file__).parent / "golden"
# pycocotools' annToMask predates numpy 2's __array__ copy keyword
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CARRIED_SHAPES = ("rectangle", "polygon", "mask")


def _document(archive_bytes: bytes, subset: str = "default") -> dict:
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        return json.loads(archive.read(f"annotations/instances_{subset}.json"))


def _import(tmp_path: Path, archive_bytes: bytes) -> LabeledData:
    path = samples.write(tmp_path, "upload.zip", archive_bytes)
    return import_coco(path, samples.labels(), samples.frames())


def _carried_shapes() -> list[Shape]:
    shapes = [s for s in samples.every_shape() if s.type in CARRIED_SHAPES]
    return [msgspec_replace(s, group=0, z_order=0) for s in shapes]


def msgspec_replace(shape: Shape, **changes: object) -> Shape:
    import msgspec

    return msgspec.structs.replace(shape, **changes)


def test_round_trip_of_what_coco_carries(tmp_path: Path) -> None:
    original = LabeledData(
        shapes=_carried_shapes(), tracks=[samples.box_track(), samples.polygon_track()]
    )
    archive, warnings = samples.export_to_bytes(export_coco, samples.dataset(original))
    assert warnings == []
    imported = _import(tmp_path, archive)
    assert samples.normalized(imported) == samples.normalized(original)


def test_what_is_not_carried_is_reported() -> None:
    original = LabeledData(
        shapes=samples.every_shape(), tags=samples.tags(), tracks=[samples.skeleton_track()]
    )
    _, warnings = samples.export_to_bytes(export_coco, samples.dataset(original))
    assert warnings == [
        "1 cuboid shapes were left out (COCO does not carry them)",
        "1 points shapes were left out (COCO does not carry them)",
        "1 polyline shapes were left out (COCO does not carry them)",
        "5 skeleton shapes were left out (COCO does not carry them)",
        "2 tags were left out (COCO does not carry them)",
    ]


def test_layout_follows_cvat(tmp_path: Path) -> None:
    original = LabeledData(shapes=_carried_shapes(), tracks=[samples.box_track()])
    document = _document(samples.export_to_bytes(export_coco, samples.dataset(original))[0])
    assert set(document) == {"licenses", "info", "categories", "images", "annotations"}
    assert [c["name"] for c in document["categories"]][:3] == ["car", "person", "body"]
    assert document["categories"][3] == {"id": 4, "name": "head", "supercategory": "body"}
    assert document["images"][1]["file_name"] == "dir/img1.png"
    assert [i["id"] for i in document["images"]] == [1, 2, 3, 4, 5]
    box = document["annotations"][0]
    assert box["bbox"] == [10.5, 20.25, 19.5, 19.75]
    assert box["segmentation"] == [] and box["iscrowd"] == 0
    assert box["area"] == pytest.approx(19.5 * 19.75)
    assert box["attributes"] == {
        "model": "b",
        "speed": 5.0,
        "parked": True,
        "note": "hi",
        "occluded": True,
        "rotation": 15.0,
    }
    track_frames = [a for a in document["annotations"] if "track_id" in a["attributes"]]
    assert [(a["image_id"], a["attributes"]["keyframe"]) for a in track_frames] == [
        (1, True),
        (2, False),
        (3, True),
    ]
    mask = next(a for a in document["annotations"] if a["iscrowd"])
    assert mask["segmentation"]["size"] == [80, 100]
    assert mask["area"] == 4.0 and mask["bbox"] == [5, 6, 3, 2]
    assert [a["id"] for a in document["annotations"]] == list(
        range(1, len(document["annotations"]) + 1)
    )


def test_pycocotools_loads_the_export(tmp_path: Path) -> None:
    original = LabeledData(
        shapes=samples.every_shape(), tracks=[samples.box_track(), samples.polygon_track()]
    )
    archive, _ = samples.export_to_bytes(export_coco, samples.dataset(original))
    path = tmp_path / "instances_default.json"
    path.write_text(json.dumps(_document(archive)))
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == 5
    assert coco.loadCats(coco.getCatIds(catNms=["person"]))[0]["id"] == 2
    anns = coco.loadAnns(coco.getAnnIds())
    masks = [coco.annToMask(ann) for ann in anns if ann["segmentation"]]
    assert all(m.shape == (80, 100) for m in masks)
    crowd = [ann for ann in anns if ann["iscrowd"]]
    assert len(crowd) == 2  # the mask and the ellipse
    expected, left, top = cvat_mask_bitmap(samples.mask_points())
    decoded = [coco.annToMask(a) for a in crowd if a["image_id"] == 4][0]
    assert decoded[top : top + 2, left : left + 3].tolist() == expected.tolist()
    assert decoded.sum() == expected.sum()


def test_ellipses_become_masks(tmp_path: Path) -> None:
    ellipse = next(s for s in samples.every_shape() if s.type == "ellipse")
    archive, _ = samples.export_to_bytes(
        export_coco, samples.dataset(LabeledData(shapes=[ellipse]))
    )
    entry = _document(archive)["annotations"][0]
    assert entry["iscrowd"] == 1
    assert entry["area"] == pytest.approx(np.pi * 10 * 5, rel=0.15)
    imported = _import(tmp_path, archive)
    assert [s.type for s in imported.shapes] == ["mask"]


def test_a_group_is_one_instance_and_multi_polygons_regroup(tmp_path: Path) -> None:
    shapes = [
        Shape("rectangle", samples.PERSON, 0, [0.0, 0.0, 50.0, 50.0], group=3),
        Shape("polygon", samples.PERSON, 0, [1.0, 1.0, 9.0, 1.0, 9.0, 9.0], group=3),
        Shape("polygon", samples.PERSON, 0, [20.0, 20.0, 30.0, 20.0, 30.0, 30.0], group=3),
    ]
    archive, _ = samples.export_to_bytes(export_coco, samples.dataset(LabeledData(shapes=shapes)))
    (entry,) = _document(archive)["annotations"]
    assert len(entry["segmentation"]) == 2 and entry["bbox"] == [0.0, 0.0, 50.0, 50.0]
    imported = _import(tmp_path, archive)
    assert [s.type for s in imported.shapes] == ["polygon", "polygon"]
    assert imported.shapes[0].group == imported.shapes[1].group != 0


def test_is_crowd_attribute_forces_a_mask(tmp_path: Path) -> None:
    from core.labels import AttributeSpec

    labels = samples.labels()
    labels[1].attributes = [AttributeSpec(90, "is_crowd", False, "checkbox", ["false"], "false")]
    polygon = Shape(
        "polygon",
        samples.PERSON,
        0,
        [1.0, 1.0, 9.0, 1.0, 9.0, 9.0],
        attributes=[samples.AttributeValue(90, "true")],
    )
    data = samples.dataset(LabeledData(shapes=[polygon]))
    data.labels = labels
    archive, _ = samples.export_to_bytes(export_coco, data)
    entry = _document(archive)["annotations"][0]
    assert entry["iscrowd"] == 1 and isinstance(entry["segmentation"], dict)


def test_subset_names_the_file_and_image_folder() -> None:
    archive, _ = samples.export_to_bytes(
        export_coco,
        samples.dataset(LabeledData(), subset="train"),
        images=lambda index: (samples.frames()[index].name, b"x"),
    )
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        names = set(opened.namelist())
    assert "annotations/instances_train.json" in names
    assert "images/train/dir/img1.png" in names


def test_golden_file_imports(tmp_path: Path) -> None:
    imported = import_coco(GOLDEN / "instances_default.json", samples.labels(), samples.frames())
    by_type = {(s.type, s.frame): s for s in imported.shapes}
    box = by_type[("rectangle", 0)]
    assert box.points == [10.0, 20.0, 40.0, 60.0] and box.occluded and box.rotation == 0.0
    assert {a.spec_id: a.value for a in box.attributes} == {
        samples.MODEL: "b",
        samples.SPEED: "5",
        samples.PARKED: "true",
    }
    assert by_type[("polygon", 1)].points == [1.0, 2.0, 10.0, 2.0, 10.0, 12.0]
    assert by_type[("mask", 3)].points == samples.mask_points()
    compressed = by_type[("mask", 2)]
    bitmap, left, top = cvat_mask_bitmap(compressed.points)
    assert (left, top, bitmap.shape) == (10, 20, (3, 4))
    assert bitmap.all()
    (track,) = imported.tracks
    assert [(s.frame, s.outside) for s in track.shapes] == [(0, False), (2, True), (4, False)]
    assert track.shapes[2].points == [4.0, 4.0, 14.0, 14.0]


def test_compressed_counts_decode_like_pycocotools() -> None:
    from workers.formats.masks import coco_rle_bitmap

    rng = np.random.default_rng(5)
    bitmap = (rng.random((7, 9)) > 0.5).astype(np.uint8)
    encoded = mask_utils.encode(np.asfortranarray(bitmap))
    ours = coco_rle_bitmap({"size": [7, 9], "counts": encoded["counts"].decode()}, 7, 9)
    assert ours.tolist() == bitmap.tolist()


def _json_upload(tmp_path: Path, document: object) -> Path:
    return samples.write(tmp_path, "bad.json", json.dumps(document).encode())


def _minimal(annotation: dict) -> dict:
    return {
        "images": [{"id": 1, "file_name": "img0.jpg", "width": 100, "height": 80}],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "truck"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, **annotation}],
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_minimal({"category_id": 2, "bbox": [0, 0, 1, 1]}), "'truck'"),
        (_minimal({"bbox": ["a", 0, 1, 1]}), "not a number"),
        (_minimal({"segmentation": [[0, 0, 1, "x", 2, 2]]}), "not a number"),
        (_minimal({"segmentation": [[0, 0, 1]]}), "not a list of x, y"),
        (_minimal({"segmentation": "nope"}), "neither polygons nor RLE"),
        (_minimal({"segmentation": {"size": [80, 100], "counts": [1, 2]}}), "runs cover 3"),
        (_minimal({"segmentation": {"size": [8, 10], "counts": [80]}}), "differs from the image"),
        (_minimal({"segmentation": {"size": [80, 100], "counts": "\x7f\x7f"}}), "malformed"),
        (_minimal({"bbox": [0, 0, 1, 1], "attributes": {"model": "zzz"}}), "'zzz'"),
        (_minimal({"bbox": [0, 0, 1, 1], "attributes": {"occluded": "maybe"}}), "occluded"),
        (_minimal({"image_id": 5, "bbox": [0, 0, 1, 1]}), "image 5 is not listed"),
        (_minimal({}), "neither a segmentation nor a bbox"),
        (
            {
                "images": [{"id": 1, "file_name": "other.jpg"}],
                "categories": [{"id": 1, "name": "car"}],
                "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
            },
            "'other.jpg'",
        ),
        ({"images": "x"}, "not a list of objects"),
        ([1, 2], "not a COCO document"),
    ],
)
def test_bad_documents_are_refused(tmp_path: Path, document: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        import_coco(_json_upload(tmp_path, document), samples.labels(), samples.frames())


INFINITE_BOX = (
    b'{"images": [{"id": 1, "file_name": "img0.jpg"}], "categories": [{"id": 1, "name": "car"}],'
    b' "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1e999, 0, 1, 1]}]}'
)


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe{", b"[" * 100_000, b"", INFINITE_BOX])
def test_malformed_json_is_refused(tmp_path: Path, content: bytes) -> None:
    path = samples.write(tmp_path, "bad.json", content)
    with pytest.raises(FormatError):
        import_coco(path, samples.labels(), samples.frames())


def test_images_without_annotations_need_no_frame(tmp_path: Path) -> None:
    document = _minimal({"bbox": [0, 0, 1, 1]})
    document["images"].append({"id": 2, "file_name": "elsewhere.jpg"})
    imported = import_coco(_json_upload(tmp_path, document), samples.labels(), samples.frames())
    assert len(imported.shapes) == 1


def test_a_stored_mask_larger_than_its_frame_is_left_out() -> None:
    huge = Shape("mask", samples.PERSON, 0, [0.0, 10.0**8, 0.0, 0.0, 9999.0, 9999.0])
    archive, warnings = samples.export_to_bytes(
        export_coco, samples.dataset(LabeledData(shapes=[huge]))
    )
    assert _document(archive)["annotations"] == []
    assert warnings == [
        "an object on frame 0 was left out: the mask's box is larger than the frame"
    ]


def test_masks_anywhere_on_the_frame_are_crowds_as_pycocotools_encodes_them() -> None:
    rng = np.random.default_rng(3)
    shapes = []
    for left, top in ((0, 0), (90, 70), (40, 30), (-3, -2), (97, 5)):
        bitmap = (rng.random((9, 7)) < 0.5).astype(np.uint8)
        bitmap[0, 0] = 1
        shapes.append(Shape("mask", samples.PERSON, 0, masks.bitmap_to_cvat(bitmap, left, top)))
    archive, warnings = samples.export_to_bytes(
        export_coco, samples.dataset(LabeledData(shapes=shapes))
    )
    assert warnings == []
    entries = _document(archive)["annotations"]
    assert len(entries) == len(shapes)
    for shape, entry in zip(shapes, entries, strict=True):
        canvas = np.zeros((80, 100), dtype=np.uint8)
        box, left, top = cvat_mask_bitmap(shape.points)
        masks.paste(canvas, box.astype(np.uint8), left, top)
        assert entry["iscrowd"] == 1
        assert entry["segmentation"] == masks.coco_rle(canvas)
        assert entry["area"] == float(canvas.sum())
        encoded = mask_utils.encode(np.asfortranarray(canvas))
        assert entry["bbox"] == [float(v) for v in mask_utils.toBbox(encoded)]


def test_rle_reads_back_as_the_bitmap_it_encodes() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        height, width = (int(v) for v in rng.integers(1, 12, 2))
        canvas = (rng.random((height, width)) < rng.random()).astype(np.uint8)
        canvas[:, : int(rng.integers(0, width))] = 0
        rle = masks.coco_rle(canvas)
        assert masks.coco_rle_to_cvat(rle, height, width) == masks.bitmap_to_cvat(canvas)


def test_a_frame_with_hundreds_of_polygons_has_each_area(tmp_path: Path) -> None:
    polygons = [
        [1.0 + i % 90, 1.0, 5.0 + i % 90, 1.0 + i % 7, 3.0 + i % 90, 9.0] for i in range(300)
    ]
    shapes = [Shape("polygon", samples.CAR, 1, polygon) for polygon in polygons]
    archive, _ = samples.export_to_bytes(export_coco, samples.dataset(LabeledData(shapes=shapes)))
    areas = [entry["area"] for entry in _document(archive)["annotations"]]
    expected = [float(mask_utils.area(mask_utils.frPyObjects([p], 80, 100))[0]) for p in polygons]
    assert areas == expected
