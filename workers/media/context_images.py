"""Contextual images of 2D frames, laid out as CVAT expects in an uploaded folder or archive.

The context images of ``dir/photo.jpg`` are the images under
``dir/related_images/photo_jpg/`` (the frame's file name with its dot made an underscore);
at most ``MAX_PER_FRAME`` a frame. They are kept as uploaded, under
``context/<frame>/<position><extension>``, and served together as a ZIP.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from workers.images import MediaError, probe_image

MAX_PER_FRAME = 12
FOLDER = "related_images"


def split_context_images(names: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The frame images, and the context images of each frame image that has some."""
    frames = [name for name in names if FOLDER not in PurePosixPath(name).parts[:-1]]
    by_folder: dict[str, list[str]] = {}
    for name in names:
        path = PurePosixPath(name)
        if FOLDER in path.parts[:-1]:
            by_folder.setdefault(str(path.parent), []).append(name)
    owners = {context_folder(frame): frame for frame in frames}
    context: dict[str, list[str]] = {}
    for folder, members in by_folder.items():
        owner = owners.get(folder)
        if owner is None:
            raise MediaError(f"{folder}/ holds context images of an image that is not uploaded")
        if len(members) > MAX_PER_FRAME:
            raise MediaError(
                f"{owner} has {len(members)} context images; at most {MAX_PER_FRAME} are allowed"
            )
        context[owner] = sorted(members)
    return frames, context


def context_folder(frame: str) -> str:
    """Where the context images of ``frame`` lie, relative to the upload's root."""
    path = PurePosixPath(frame)
    return str(path.parent / FOLDER / path.name.replace(".", "_"))


def store_context_images(upload_dir: Path, names: list[str], media_dir: Path, frame: int) -> int:
    """Checks and moves a frame's context images into the task's media; how many."""
    target = context_dir(media_dir, frame)
    target.mkdir(parents=True, exist_ok=True)
    for position, name in enumerate(names):
        source = upload_dir / name
        probe_image(source)
        os.replace(source, target / f"{position:02d}{source.suffix.lower()}")
    return len(names)


def context_dir(media_dir: Path, frame: int) -> Path:
    return media_dir / "context" / f"{frame:06d}"
