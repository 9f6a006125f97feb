"""The format registry and CVAT's formats listing."""

from __future__ import annotations

import pytest

from workers.formats import registry


def test_formats_json_has_cvat_shape() -> None:
    listing = registry.formats_json()
    assert set(listing) == {"importers", "exporters"}
    for entry in listing["importers"] + listing["exporters"]:
        assert set(entry) == {"name", "ext", "version", "enabled", "dimension"}
        assert entry["name"].endswith(entry["version"]) and entry["dimension"] == "2d"
    assert [e["name"] for e in listing["exporters"]][:7] == [
        "CVAT for images 1.1",
        "CVAT for video 1.1",
        "COCO 1.0",
        "Datumaro 1.0",
        "PASCAL VOC 1.1",
        "Segmentation mask 1.1",
        "COCO Keypoints 1.0",
    ]
    assert [(e["name"], e["ext"]) for e in listing["importers"]][:6] == [
        ("CVAT 1.1", "XML, ZIP"),
        ("COCO 1.0", "JSON, ZIP"),
        ("Datumaro 1.0", "JSON, ZIP"),
        ("PASCAL VOC 1.1", "ZIP"),
        ("Segmentation mask 1.1", "ZIP"),
        ("COCO Keypoints 1.0", "JSON, ZIP"),
    ]
    yolo = {
        "YOLO 1.1",
        "Ultralytics YOLO Detection 1.0",
        "Ultralytics YOLO Segmentation 1.0",
        "Ultralytics YOLO Pose 1.0",
        "Ultralytics YOLO Oriented Bounding Boxes 1.0",
        "Ultralytics YOLO Classification 1.0",
    }
    for direction in ("exporters", "importers"):
        listed = {e["name"]: e["ext"] for e in listing[direction]}
        assert {name: listed.get(name) for name in yolo} == dict.fromkeys(yolo, "ZIP")


def test_lookups() -> None:
    assert registry.find_exporter("CVAT for images 1.1").exporter is not None
    assert registry.find_importer("CVAT 1.1").importer is not None
    assert registry.find_importer("COCO 1.0").ext == "JSON, ZIP"
    assert registry.find_exporter("COCO 1.0").ext == "ZIP"
    with pytest.raises(KeyError):
        registry.find_exporter("CVAT 1.1")
    with pytest.raises(KeyError):
        registry.find_importer("CVAT for video 1.1")
    with pytest.raises(KeyError):
        registry.find_exporter("YOLO 1.0")
