"""CVAT's dataset manifests (manual 2.34): `manifest.jsonl` and its `index.json`.

A manifest is JSON lines: `{"version":"1.1"}`, `{"type":"images"|"video"}`, then for images
one line per image (`name` without extension, `extension` with its dot, `width`, `height`,
optional `meta` and `checksum`), for a video a `{"properties":{"name","resolution":[w,h],
"length"}}` line and one line per key frame (`number`, `pts`, optional `checksum`).
`index.json` maps each item's number to the byte offset of its line, as CVAT writes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec

from core.cloud_storages import is_safe_key
from workers.images import MediaError

MANIFEST_FILE = "manifest.jsonl"
INDEX_FILE = "index.json"
VERSIONS = ("1.0", "1.1")
WRITTEN_VERSION = "1.1"
MAX_ITEMS = 1_000_000


class ImageItem(msgspec.Struct, omit_defaults=True):
    name: str
    extension: str
    width: int | None = None
    height: int | None = None
    meta: dict[str, Any] | None = None
    checksum: str | None = None

    @property
    def file_name(self) -> str:
        return self.name + self.extension


class VideoProperties(msgspec.Struct):
    name: str
    resolution: tuple[int, int]
    length: int


class KeyFrame(msgspec.Struct, omit_defaults=True):
    number: int
    pts: int
    checksum: str | None = None


class Manifest(msgspec.Struct):
    type: Literal["images", "video"]
    version: str = WRITTEN_VERSION
    images: list[ImageItem] = []
    video: VideoProperties | None = None
    key_frames: list[KeyFrame] = []

    def file_names(self) -> list[str]:
        """The files it describes, in its order."""
        if self.video is not None:
            return [self.video.name]
        return [item.file_name for item in self.images]


def is_manifest(name: str) -> bool:
    return name.rsplit("/", 1)[-1].endswith(".jsonl")


def parse_manifest(raw: bytes) -> Manifest:
    """Reads a manifest, naming the first line that is not what CVAT writes."""
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) < 2:
        raise MediaError("the manifest needs a version line and a type line")
    if len(lines) > MAX_ITEMS + 3:
        raise MediaError(f"the manifest has more than {MAX_ITEMS} items")
    version = _field(lines[0], "version", 1)
    if version not in VERSIONS:
        raise MediaError(f"manifest version {version!r} is not one of {', '.join(VERSIONS)}")
    kind = _field(lines[1], "type", 2)
    if kind == "images":
        images = [_item(line, number, ImageItem) for number, line in enumerate(lines[2:], 3)]
        for number, image in enumerate(images, 3):
            _check_name(image.file_name, number)
        return Manifest(type="images", version=version, images=images)
    if kind == "video":
        if len(lines) < 3:
            raise MediaError("a video manifest needs a properties line")
        properties = _item(
            msgspec.json.encode(_field(lines[2], "properties", 3)), 3, VideoProperties
        )
        _check_name(properties.name, 3)
        frames = [_item(line, number, KeyFrame) for number, line in enumerate(lines[3:], 4)]
        return Manifest(type="video", version=version, video=properties, key_frames=frames)
    raise MediaError(f"manifest type {kind!r} is not images or video")


def _field(line: bytes, key: str, number: int) -> Any:
    try:
        value = json.loads(line)[key]
    except (ValueError, KeyError, TypeError):
        raise MediaError(f"manifest line {number} should be an object with {key!r}") from None
    return value


def _item(line: bytes, number: int, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(line, type=kind)
    except msgspec.DecodeError as error:
        raise MediaError(f"manifest line {number}: {error}") from None


def _check_name(name: str, number: int) -> None:
    if not is_safe_key(name):
        raise MediaError(f"manifest line {number}: {name!r} is not a usable file name")


def image_items(frames: Iterable[tuple[str, int, int]]) -> list[ImageItem]:
    """Manifest lines for (file name, width, height) in task order."""
    items = []
    for file_name, width, height in frames:
        stem, dot, extension = file_name.rpartition(".")
        if not dot or "/" in extension:
            stem, extension = file_name, ""
        else:
            extension = "." + extension
        items.append(ImageItem(name=stem, extension=extension, width=width, height=height))
    return items


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Writes manifest.jsonl and index.json into folder."""
    header: list[dict[str, Any]] = [{"version": manifest.version}, {"type": manifest.type}]
    items: list[Any]
    if manifest.video is not None:
        header.append({"properties": manifest.video})
        items = list(manifest.key_frames)
    else:
        items = list(manifest.images)
    encoded_header = b"".join(msgspec.json.encode(line) + b"\n" for line in header)
    offsets: dict[str, int] = {}
    body = bytearray(encoded_header)
    for number, item in enumerate(items):
        offsets[str(number)] = len(body)
        body += msgspec.json.encode(item) + b"\n"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).write_bytes(bytes(body))
    (folder / INDEX_FILE).write_bytes(msgspec.json.encode(offsets))


def read_index(folder: Path) -> dict[int, int]:
    """index.json as CVAT reads it: item number to byte offset."""
    raw = json.loads((folder / INDEX_FILE).read_bytes())
    return {int(number): offset for number, offset in raw.items()}
