"""The annotation formats the server offers, by CVAT's names ("{NAME} {VERSION}").

An exporter is ``export(dataset, zip, *, images) -> warnings``; an importer is
``import_(path, labels, frames) -> LabeledData``. Export and import of one format may differ
in name or accepted file kinds (CVAT exports "CVAT for images 1.1" and imports "CVAT 1.1"),
so each direction has its own entry. `formats_json` is the body of CVAT's
``GET /api/server/annotation/formats``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.annotations import LabeledData
from core.labels import LabelSpec
from infra.collector import in_bulk
from workers.formats.coco import export_coco, import_coco
from workers.formats.coco_keypoints import export_coco_keypoints, import_coco_keypoints
from workers.formats.cvat_images import export_images, export_video
from workers.formats.cvat_import import import_cvat
from workers.formats.dataset import FrameInfo, ImageSource, TaskDataset
from workers.formats.datumaro import export_datumaro, import_datumaro
from workers.formats.pascal_voc import export_pascal_voc, import_pascal_voc
from workers.formats.segmentation_mask import export_segmentation_mask, import_segmentation_mask
from workers.formats.yolo import (
    export_detection,
    export_oriented,
    export_pose,
    export_segmentation,
    export_yolo,
)
from workers.formats.yolo_classification import export_classification, import_classification
from workers.formats.yolo_import import (
    import_detection,
    import_oriented,
    import_pose,
    import_segmentation,
    import_yolo,
)

Exporter = Callable[..., list[str]]
Importer = Callable[[Path, list[LabelSpec], list[FrameInfo]], LabeledData]


@dataclass(frozen=True)
class Format:
    name: str
    ext: str
    version: str
    dimension: str
    exporter: Exporter | None
    importer: Importer | None
    # A project export gives such an exporter all subsets at once (frames carry their
    # subset); any other exporter is called once per subset, into the same archive.
    merges_subsets: bool = False

    def __post_init__(self) -> None:
        for role in ("exporter", "importer"):
            codec = getattr(self, role)
            if codec is not None:
                object.__setattr__(self, role, in_bulk(codec))

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ext": self.ext,
            "version": self.version,
            "enabled": True,
            "dimension": self.dimension,
        }


FORMATS: list[Format] = [
    Format("CVAT for images 1.1", "ZIP", "1.1", "2d", export_images, None, merges_subsets=True),
    Format("CVAT for video 1.1", "ZIP", "1.1", "2d", export_video, None, merges_subsets=True),
    Format("CVAT 1.1", "XML, ZIP", "1.1", "2d", None, import_cvat),
    Format("COCO 1.0", "ZIP", "1.0", "2d", export_coco, None),
    Format("COCO 1.0", "JSON, ZIP", "1.0", "2d", None, import_coco),
    Format("Datumaro 1.0", "ZIP", "1.0", "2d", export_datumaro, None),
    Format("Datumaro 1.0", "JSON, ZIP", "1.0", "2d", None, import_datumaro),
    Format("PASCAL VOC 1.1", "ZIP", "1.1", "2d", export_pascal_voc, None),
    Format("PASCAL VOC 1.1", "ZIP", "1.1", "2d", None, import_pascal_voc),
    Format("Segmentation mask 1.1", "ZIP", "1.1", "2d", export_segmentation_mask, None),
    Format("Segmentation mask 1.1", "ZIP", "1.1", "2d", None, import_segmentation_mask),
    Format("COCO Keypoints 1.0", "ZIP", "1.0", "2d", export_coco_keypoints, None),
    Format("COCO Keypoints 1.0", "JSON, ZIP", "1.0", "2d", None, import_coco_keypoints),
    Format("YOLO 1.1", "ZIP", "1.1", "2d", export_yolo, import_yolo),
    Format(
        "Ultralytics YOLO Detection 1.0", "ZIP", "1.0", "2d", export_detection, import_detection
    ),
    Format(
        "Ultralytics YOLO Segmentation 1.0",
        "ZIP",
        "1.0",
        "2d",
        export_segmentation,
        import_segmentation,
    ),
    Format("Ultralytics YOLO Pose 1.0", "ZIP", "1.0", "2d", export_pose, import_pose),
    Format(
        "Ultralytics YOLO Oriented Bounding Boxes 1.0",
        "ZIP",
        "1.0",
        "2d",
        export_oriented,
        import_oriented,
    ),
    Format(
        "Ultralytics YOLO Classification 1.0",
        "ZIP",
        "1.0",
        "2d",
        export_classification,
        import_classification,
    ),
]


def find_exporter(name: str) -> Format:
    """The export format called ``name``; KeyError if there is none."""
    for fmt in FORMATS:
        if fmt.name == name and fmt.exporter is not None:
            return fmt
    raise KeyError(name)


def find_importer(name: str) -> Format:
    """The import format called ``name``; KeyError if there is none."""
    for fmt in FORMATS:
        if fmt.name == name and fmt.importer is not None:
            return fmt
    raise KeyError(name)


def formats_json() -> dict[str, list[dict[str, object]]]:
    return {
        "importers": [fmt.as_json() for fmt in FORMATS if fmt.importer is not None],
        "exporters": [fmt.as_json() for fmt in FORMATS if fmt.exporter is not None],
    }


def export_dataset(
    name: str, dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """Export with the format called ``name`` (KeyError if unknown)."""
    exporter = find_exporter(name).exporter
    assert exporter is not None
    return exporter(dataset, out, images=images)
