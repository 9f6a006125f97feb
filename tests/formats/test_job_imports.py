"""A task's export read into one of its jobs: items of frames outside the job are fine as
long as they hold nothing; an object on such a frame is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.annotations import LabeledData, Shape
from tests.formats import samples
from workers.formats.dataset import FormatError
from workers.formats.datumaro import export_datumaro, import_datumaro
from workers.formats.pascal_voc import export_pascal_voc, import_pascal_voc
from workers.formats.segmentation_mask import export_segmentation_mask, import_segmentation_mask

FORMATS = [
    (export_datumaro, import_datumaro),
    (export_pascal_voc, import_pascal_voc),
    (export_segmentation_mask, import_segmentation_mask),
]
JOB_FRAMES = samples.frames()[3:]


def _export(exporter, frame: int) -> bytes:
    shape = Shape("rectangle", samples.CAR, frame, [10.0, 10.0, 20.0, 20.0])
    archive, _ = samples.export_to_bytes(exporter, samples.dataset(LabeledData(shapes=[shape])))
    return archive


@pytest.mark.parametrize(("exporter", "importer"), FORMATS)
def test_empty_frames_outside_the_job_are_skipped(tmp_path: Path, exporter, importer) -> None:
    path = samples.write(tmp_path, "task.zip", _export(exporter, 4))
    imported = importer(path, samples.labels(), JOB_FRAMES)
    assert [(s.label_id, s.frame) for s in imported.shapes] == [(samples.CAR, 4)]


@pytest.mark.parametrize(("exporter", "importer"), FORMATS)
def test_an_object_outside_the_job_is_refused(tmp_path: Path, exporter, importer) -> None:
    path = samples.write(tmp_path, "task.zip", _export(exporter, 1))
    with pytest.raises(FormatError, match="does not match any frame"):
        importer(path, samples.labels(), JOB_FRAMES)
