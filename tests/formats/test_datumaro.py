"""Datumaro 1.0 export and import.

Carried: every shape type, tags, label attributes, occluded, rotation, z_order, groups,
skeletons (points outside and occluded), tracks (as per-frame annotations with track_id and
keyframe, rebuilt on import). Not carried: source (import sets "file"), ids; a missing
attribute comes back with the label's default value.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from core.annotations import LabeledData, Shape
from tests.formats import samples
from workers.formats.dataset import FormatError
from workers.formats.datumaro import export_datumaro, import_datumaro
from workers.formats.masks import cvat_mask_bitmap

GOLDEN = Path(__file__).parent / "golden" / "datumaro" / "annotations" / "default.json"


def _document(archive_bytes: bytes, subset: str = "default") -> dict:
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        return json.loads(archive.read(f"annotations/{subset}.json"))


def _everything() -> LabeledData:
    return LabeledData(
        shapes=samples.every_shape(),
        tags=samples.tags(),
        tracks=[samples.box_track(), samples.polygon_track(), samples.skeleton_track()],
    )


def test_round_trip_carries_everything(tmp_path: Path) -> None:
    original = _everything()
    archive, warnings = samples.export_to_bytes(export_datumaro, samples.dataset(original))
    assert warnings == []
    path = samples.write(tmp_path, "upload.zip", archive)
    imported = import_datumaro(path, samples.labels(), samples.frames())
    assert samples.normalized(imported) == samples.normalized(original)


def test_layout_follows_datumaro() -> None:
    archive, _ = samples.export_to_bytes(
        export_datumaro,
        samples.dataset(_everything(), subset="train"),
        images=lambda index: (samples.frames()[index].name, b"x"),
    )
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert "images/train/dir/img1.png" in opened.namelist()
    document = _document(archive, "train")
    labels = document["categories"]["label"]["labels"]
    assert [(label["name"], label["parent"]) for label in labels] == [
        ("car", ""),
        ("person", ""),
        ("body", ""),
        ("head", "body"),
        ("hand", "body"),
        ("scene", ""),
    ]
    assert document["categories"]["points"]["items"] == [
        {"label_id": 2, "labels": ["head", "hand"], "joints": [[1, 2]]}
    ]
    items = document["items"]
    assert [(i["id"], i["attr"]["frame"]) for i in items][:2] == [("img0", 0), ("dir/img1", 1)]
    assert items[1]["image"] == {"path": "dir/img1.png", "size": [80, 100]}
    box = next(a for a in items[0]["annotations"] if a["type"] == "bbox" and a["group"])
    assert box["bbox"] == [10.5, 20.25, 19.5, 19.75]
    assert (box["label_id"], box["z_order"], box["group"]) == (0, 2, 1)
    assert box["attributes"] == {
        "model": "b",
        "speed": 5.0,
        "parked": True,
        "note": "hi",
        "occluded": True,
        "rotation": 15.0,
    }
    tag = next(a for a in items[0]["annotations"] if a["type"] == "label")
    assert tag["label_id"] == 5 and tag["attributes"]["weather"] == "rain"
    kinds = {a["type"] for item in items for a in item["annotations"]}
    assert kinds == {"bbox", "polygon", "polyline", "points", "ellipse", "cuboid_2d", "mask"} | {
        "skeleton",
        "label",
    }
    cuboid = next(a for a in items[2]["annotations"] if a["type"] == "cuboid_2d")
    assert cuboid["points"][:2] == [[10.0, 12.0], [14.0, 16.0]] and len(cuboid["points"]) == 8
    ellipse = next(a for a in items[2]["annotations"] if a["type"] == "ellipse")
    assert ellipse["points"] == [40.0, 35.0, 60.0, 45.0]
    skeleton = next(a for a in items[4]["annotations"] if a["type"] == "skeleton")
    assert [(e["label_id"], e["visibility"]) for e in skeleton["elements"]] == [(3, [2]), (4, [0])]
    track_frames = [
        (item["attr"]["frame"], a["attributes"]["keyframe"])
        for item in items
        for a in item["annotations"]
        if a["attributes"].get("track_id") == 0
    ]
    assert track_frames == [(0, True), (1, False), (2, True)]


def test_golden_file_imports() -> None:
    imported = import_datumaro(GOLDEN, samples.labels(), samples.frames())
    kinds = [(s.frame, s.type) for s in imported.shapes]
    assert kinds == [
        (0, "rectangle"),
        (0, "polygon"),
        (1, "polyline"),
        (1, "points"),
        (2, "ellipse"),
        (2, "mask"),
        (3, "skeleton"),
    ]
    box = imported.shapes[0]
    assert box.points == [10.0, 20.0, 40.0, 60.0]
    assert (box.occluded, box.rotation, box.group, box.z_order) == (True, 15.0, 1, 2)
    assert {a.spec_id: a.value for a in box.attributes} == {
        samples.MODEL: "b",
        samples.SPEED: "5",
        samples.PARKED: "true",
    }
    assert imported.shapes[1].group == 1
    assert imported.shapes[4].points == [50.0, 40.0, 60.0, 35.0]
    assert imported.shapes[4].rotation == 30.0
    bitmap, left, top = cvat_mask_bitmap(imported.shapes[5].points)
    assert (left, top, bitmap.shape, bool(bitmap.all())) == (10, 20, (3, 4), True)
    head, hand = imported.shapes[6].elements
    assert (head.label_id, head.occluded, head.outside) == (samples.HEAD, True, False)
    assert head.attributes == [samples.AttributeValue(samples.LOOK, "right")]
    assert (hand.label_id, hand.outside) == (samples.HAND, True)
    (tag,) = imported.tags
    assert (tag.frame, tag.label_id, tag.attributes[0].value) == (0, samples.SCENE, "rain")
    (track,) = imported.tracks
    assert [(s.frame, s.outside) for s in track.shapes] == [(3, False), (4, True)]


def _minimal(annotation: dict) -> dict:
    return {
        "categories": {"label": {"labels": [{"name": "car"}, {"name": "truck"}]}},
        "items": [{"id": "img0", "annotations": [{"id": 0, "label_id": 0, **annotation}]}],
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_minimal({"type": "bbox", "label_id": 1, "bbox": [0, 0, 1, 1]}), "'truck'"),
        (_minimal({"type": "bbox", "label_id": 7, "bbox": [0, 0, 1, 1]}), "label_id 7"),
        (_minimal({"type": "bbox", "bbox": ["a", 0, 1, 1]}), "not a number"),
        (_minimal({"type": "bbox", "bbox": [0, 0, -1, 1]}), r"\[x, y, width, height\]"),
        (_minimal({"type": "polygon", "points": [0, 0, 1, "x", 2, 2]}), "not a number"),
        (_minimal({"type": "polygon", "points": [0, 0, 1]}), "too few"),
        (_minimal({"type": "mask", "rle": {"size": [80, 100], "counts": [1, 2]}}), "runs cover"),
        (_minimal({"type": "mask", "rle": {"size": [8, 10], "counts": [80]}}), "differs"),
        (_minimal({"type": "cuboid_2d", "points": [1, 2]}), "expected 16"),
        (_minimal({"type": "cuboid_2d", "points": [[1, 2], [3, "x"]]}), "not a number"),
        (_minimal({"type": "caption"}), "'caption' is not supported"),
        (_minimal({"type": "bbox", "bbox": [0, 0, 1, 1], "attributes": {"model": "z"}}), "'z'"),
        (_minimal({"type": "bbox", "bbox": [0, 0, 1, 1], "attributes": []}), "not an object"),
        ({"categories": {}, "items": []}, "no 'label' section"),
        (
            {
                "categories": {"label": {"labels": [{"name": "car"}]}},
                "items": [{"id": "elsewhere", "annotations": [{"type": "label", "label_id": 0}]}],
            },
            "item 'elsewhere'",
        ),
        ({"categories": {"label": {"labels": "x"}}}, "not a list of objects"),
        ([1], "not a Datumaro document"),
    ],
)
def test_bad_documents_are_refused(tmp_path: Path, document: object, message: str) -> None:
    path = samples.write(tmp_path, "bad.json", json.dumps(document).encode())
    with pytest.raises(FormatError, match=message):
        import_datumaro(path, samples.labels(), samples.frames())


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe{", b"[" * 100_000, b"", b'{"items": NaN}'])
def test_malformed_json_is_refused(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(FormatError):
        import_datumaro(samples.write(tmp_path, "bad.json", content), [], samples.frames())


def test_a_mask_larger_than_its_frame_is_left_out_with_a_warning() -> None:
    huge = Shape("mask", samples.PERSON, 0, [0.0, 10.0**8, 0.0, 0.0, 9999.0, 9999.0])
    archive, warnings = samples.export_to_bytes(
        export_datumaro, samples.dataset(LabeledData(shapes=[huge]))
    )
    assert _document(archive)["items"][0]["annotations"] == []
    assert warnings == ["a mask on frame 0 was left out: the mask's box is larger than the frame"]
