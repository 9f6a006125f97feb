"""Ultralytics YOLO Classification 1.0: images filed by label, and their tags.

Layout: ``<subset>/<label>/<image>`` plus ``<subset>/labels.json`` (image name to label
names); an import reads labels.json when present, else the folder names.
"""

from __future__ import annotations

import json
import posixpath
import zipfile
from collections import defaultdict
from pathlib import Path

from core.annotations import LabeledData, Tag
from core.labels import LabelSpec
from workers.formats.archives import list_member_names, read_annotation_files, safe_archive_name
from workers.formats.dataset import FormatError, FrameInfo, ImageSource, TaskDataset
from workers.formats.mapping import FrameIndex, LabelIndex
from workers.formats.tracks import flatten
from workers.formats.yolo import IMAGE_SUFFIXES, image_name, stem, subset_name


def export_classification(
    dataset: TaskDataset, out: zipfile.ZipFile, *, images: ImageSource | None = None
) -> list[str]:
    """Ultralytics YOLO Classification 1.0: <subset>/<label>/<image> and <subset>/labels.json."""
    subset = subset_name(dataset)
    names = LabelIndex(dataset.labels)
    frames = {frame.index: frame for frame in dataset.frames}
    by_frame: dict[int, list[str]] = defaultdict(list)
    for tag in dataset.annotations.tags:
        name = names.name(tag.label_id)
        if tag.frame in frames and name is not None and name not in by_frame[tag.frame]:
            by_frame[tag.frame].append(name)
    document = {}
    for index in sorted(by_frame):
        frame = frames[index]
        document[stem(frame.name)] = by_frame[index]
        if images is not None:
            image, data = image_name(frame, images)
            for name in by_frame[index]:
                out.writestr(f"{subset}/{safe_archive_name(name)}/{image}", data or b"")
    out.writestr(f"{subset}/labels.json", json.dumps(document, ensure_ascii=False))
    flat, _ = flatten(dataset.annotations, dataset.stop_frame)
    warnings = []
    if flat:
        title = "Ultralytics YOLO Classification"
        warnings.append(f"{len(flat)} shapes were left out ({title} carries only tags)")
    if any(tag.attributes for tag in dataset.annotations.tags):
        warnings.append("tag attributes were left out (the format does not carry attributes)")
    return warnings


def import_classification(
    source: Path, labels: list[LabelSpec], frames: list[FrameInfo]
) -> LabeledData:
    """Tags from <subset>/labels.json, else from <subset>/<label>/<image> paths."""
    names = LabelIndex(labels)
    index = FrameIndex(frames)
    pairs: list[tuple[str, str]] = []  # (frame name, label name)
    documents = read_annotation_files(source, (".json",))
    documents = [(n, raw) for n, raw in documents if posixpath.basename(n) == "labels.json"]
    for name, raw in documents:
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as error:
            raise FormatError(f"{name} is not valid JSON: {error}") from None
        if not isinstance(document, dict):
            raise FormatError(f"{name}: expected an object of image names and label lists")
        for item, chosen in document.items():
            if not isinstance(chosen, list) or not all(isinstance(v, str) for v in chosen):
                raise FormatError(f"{name}: {item!r} is not given a list of label names")
            pairs += [(item, label) for label in chosen]
    if not documents:
        for member in list_member_names(source):
            parts = member.split("/")
            if len(parts) >= 3 and member.lower().endswith(IMAGE_SUFFIXES):
                pairs.append((posixpath.splitext("/".join(parts[2:]))[0], parts[1]))
    tags = []
    seen = set()
    for item, label_name in pairs:
        base = posixpath.basename(item)
        frame = index.require(item, int(base) if base.isdigit() else None)
        label = names.top(label_name)
        if (frame.index, label.id) not in seen:
            seen.add((frame.index, label.id))
            tags.append(Tag(label.id, frame.index, source="file"))
    return LabeledData(tags=tags)
