"""COCO Keypoints 1.0 export and import.

Carried: skeletons (their points, outside as visibility 0, occluded as 1), the skeleton's
attributes, occluded and score, skeleton tracks (per-frame annotations with track_id and
keyframe, rebuilt on import). Not carried: other shapes and tags (left out with warnings),
the attributes of skeleton points, z_order, groups, source, ids.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import msgspec
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from core.annotations import LabeledData, Shape
from tests.formats import samples
from workers.formats.coco_keypoints import export_coco_keypoints, import_coco_keypoints
from workers.formats.dataset import FormatError

GOLDEN = Path(__file__).parent / "golden" / "person_keypoints_default.json"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _skeleton(frame: int, head: list[float], hand: list[float], **extra: object) -> Shape:
    return Shape(
        "skeleton",
        samples.BODY,
        frame,
        [],
        elements=[
            Shape("points", samples.HEAD, frame, head, occluded=True),
            Shape("points", samples.HAND, frame, hand, outside=True),
        ],
        **extra,
    )


def _document(archive_bytes: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        return json.loads(archive.read("annotations/person_keypoints_default.json"))


def test_round_trip_of_skeletons_and_skeleton_tracks(tmp_path: Path) -> None:
    track = samples.skeleton_track()
    head = msgspec.structs.replace(track.elements[0], attributes=[])
    track = msgspec.structs.replace(track, elements=[head, track.elements[1]])
    original = LabeledData(
        shapes=[
            _skeleton(0, [1.0, 2.0], [3.0, 4.0], score=0.75),
            _skeleton(2, [5.0, 5.0], [6.0, 6.0]),
        ],
        tracks=[track],
    )
    archive, warnings = samples.export_to_bytes(export_coco_keypoints, samples.dataset(original))
    assert warnings == []
    path = samples.write(tmp_path, "upload.zip", archive)
    imported = import_coco_keypoints(path, samples.labels(), samples.frames())
    assert samples.normalized(imported) == samples.normalized(original)


def test_layout_follows_coco_person_keypoints() -> None:
    original = LabeledData(shapes=[_skeleton(0, [1.0, 2.0], [3.0, 4.0])])
    document = _document(
        samples.export_to_bytes(export_coco_keypoints, samples.dataset(original))[0]
    )
    body = next(c for c in document["categories"] if c["name"] == "body")
    assert body == {
        "id": 3,
        "name": "body",
        "supercategory": "",
        "keypoints": ["head", "hand"],
        "skeleton": [[1, 2]],
    }
    (entry,) = document["annotations"]
    assert entry["keypoints"] == [1.0, 2.0, 1, 3.0, 4.0, 0]
    assert entry["num_keypoints"] == 1
    assert (entry["image_id"], entry["category_id"], entry["iscrowd"]) == (1, 3, 0)
    assert entry["bbox"] == [1.0, 2.0, 0.0, 0.0] and entry["segmentation"] == []
    assert entry["attributes"] == {"occluded": False}


def test_what_is_not_carried_is_reported() -> None:
    original = LabeledData(shapes=samples.every_shape(), tags=samples.tags())
    _, warnings = samples.export_to_bytes(export_coco_keypoints, samples.dataset(original))
    assert warnings == [
        "1 cuboid shapes were left out (COCO Keypoints has none)",
        "1 ellipse shapes were left out (COCO Keypoints has none)",
        "1 mask shapes were left out (COCO Keypoints has none)",
        "1 points shapes were left out (COCO Keypoints has none)",
        "1 polygon shapes were left out (COCO Keypoints has none)",
        "1 polyline shapes were left out (COCO Keypoints has none)",
        "1 rectangle shapes were left out (COCO Keypoints has none)",
        "2 tags were left out (not carried)",
        "the attributes of skeleton points were left out (not carried)",
    ]


def test_pycocotools_loads_and_evaluates_the_export(tmp_path: Path) -> None:
    shapes = [
        _skeleton(0, [10.0, 10.0], [30.0, 30.0]),
        msgspec.structs.replace(
            _skeleton(1, [40.0, 20.0], [60.0, 50.0]),
            elements=[
                Shape("points", samples.HEAD, 1, [40.0, 20.0]),
                Shape("points", samples.HAND, 1, [60.0, 50.0]),
            ],
        ),
    ]
    archive, _ = samples.export_to_bytes(
        export_coco_keypoints, samples.dataset(LabeledData(shapes=shapes))
    )
    path = tmp_path / "person_keypoints_default.json"
    document = _document(archive)
    path.write_text(json.dumps(document))
    ground_truth = COCO(str(path))
    assert ground_truth.loadCats(3)[0]["keypoints"] == ["head", "hand"]
    assert len(ground_truth.getAnnIds(catIds=[3])) == 2
    detections = ground_truth.loadRes(
        [{**ann, "score": 1.0} for ann in document["annotations"] if ann["num_keypoints"] > 1]
    )
    evaluation = COCOeval(ground_truth, detections, iouType="keypoints")
    evaluation.params.kpt_oks_sigmas = np.array([0.05, 0.05])
    evaluation.params.catIds = [3]
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] > 0.0


def test_golden_file_imports() -> None:
    imported = import_coco_keypoints(GOLDEN, samples.labels(), samples.frames())
    (skeleton,) = imported.shapes
    assert (skeleton.label_id, skeleton.frame, skeleton.occluded, skeleton.score) == (
        samples.BODY,
        0,
        True,
        0.5,
    )
    assert skeleton.attributes == []
    by_label = {node.label_id: node for node in skeleton.elements}
    assert [n.label_id for n in skeleton.elements] == [samples.HEAD, samples.HAND]
    assert (by_label[samples.HAND].points, by_label[samples.HAND].occluded) == ([20.0, 20.0], True)
    assert (by_label[samples.HEAD].points, by_label[samples.HEAD].outside) == ([10.0, 10.0], False)
    (track,) = imported.tracks
    assert [(s.frame, s.outside) for s in track.shapes] == [
        (1, False),
        (2, True),
        (3, False),
        (4, True),
    ]
    hand = next(e for e in track.elements if e.label_id == samples.HAND)
    assert [(s.frame, s.outside) for s in hand.shapes] == [(1, True), (3, False), (4, True)]


def _minimal(annotation: dict, keypoints: list | None = None) -> dict:
    return {
        "images": [{"id": 1, "file_name": "img0.jpg"}],
        "categories": [
            {"id": 1, "name": "body", "keypoints": keypoints or ["head", "hand"]},
            {"id": 2, "name": "car", "keypoints": []},
        ],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, **annotation}],
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_minimal({"keypoints": [1, 1, 2]}), "3 keypoint values for 2 points"),
        (_minimal({"keypoints": [1, "x", 2, 1, 1, 2]}), "not a number"),
        (_minimal({"keypoints": [1, 1, 7, 1, 1, 2]}), "visibility 7"),
        (_minimal({"keypoints": [1, 1, 2, 1, 1, 2]}, ["head", "tail"]), "'tail'"),
        (_minimal({"keypoints": [], "category_id": 2}), "not a skeleton"),
        (_minimal({"keypoints": [1, 1, 2, 1, 1, 2], "image_id": 9}), "image 9 is not listed"),
        (_minimal({"keypoints": "x"}), "not a list of numbers"),
        ({"categories": [{"id": 1, "name": "body", "keypoints": "head"}]}, "not names"),
        ([1], "not a COCO document"),
    ],
)
def test_bad_documents_are_refused(tmp_path: Path, document: object, message: str) -> None:
    path = samples.write(tmp_path, "bad.json", json.dumps(document).encode())
    with pytest.raises(FormatError, match=message):
        import_coco_keypoints(path, samples.labels(), samples.frames())


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe{", b"[" * 100_000, b""])
def test_malformed_json_is_refused(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(FormatError):
        import_coco_keypoints(samples.write(tmp_path, "bad.json", content), [], samples.frames())
