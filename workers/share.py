"""Files already on the server: the share folder (PALIMPSEST_SHARE_DIR) that tasks take data
from by `server_files`, listed as CVAT's /api/server/share lists it.

Paths are relative to the share's root (a leading ``/`` is the root, as in CVAT). A path with
a ``..`` part, or one that resolves (through symlinks) outside the root, is refused.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Literal

import msgspec

from workers.images import IMAGE_EXTENSIONS
from workers.ingest import record_uploads
from workers.media.archives import is_archive
from workers.media.video import is_video


class ShareError(ValueError):
    """A user-facing reason why a share path was refused."""


class ShareEntry(msgspec.Struct):
    name: str
    type: Literal["REG", "DIR"]
    mime_type: str


def share_path(root: Path, relative: str) -> Path:
    """The existing file or folder `relative` names inside the share."""
    parts = PurePosixPath(relative).parts
    if "\x00" in relative or ".." in parts:
        raise ShareError(f"{relative!r} climbs out of the share")
    inside = [part for part in parts if part != "/"]
    base = root.resolve()
    try:
        found = base.joinpath(*inside).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise ShareError(f"{relative!r} is not in the share") from None
    except (OSError, RuntimeError):  # a symlink loop, a name too long
        raise ShareError(f"{relative!r} is not a usable path") from None
    if not found.is_relative_to(base):
        raise ShareError(f"{relative!r} leads out of the share")
    return found


def list_share(root: Path, directory: str, search: str = "") -> list[ShareEntry]:
    """The folders and files in `directory` (those starting with `search`), folders first."""
    folder = share_path(root, directory)
    if not folder.is_dir():
        raise ShareError(f"{directory!r} is not a folder of the share")
    base = root.resolve()
    entries = []
    for entry in folder.iterdir():
        if not entry.name.startswith(search):
            continue
        target = entry.resolve()
        if not target.is_relative_to(base):
            continue  # a symlink out of the share: never offered
        if target.is_dir():
            entries.append(ShareEntry(entry.name, "DIR", "DIR"))
        elif target.is_file():
            entries.append(ShareEntry(entry.name, "REG", _mime_type(entry.name)))
    return sorted(entries, key=lambda e: (e.type != "DIR", e.name))


def _mime_type(name: str) -> str:
    if is_archive(name):
        return "archive"
    if is_video(name):
        return "video"
    if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
        return "image"
    return "unknown"


def share_files(
    root: Path, server_files: Sequence[str], exclude: Sequence[str] = ()
) -> dict[str, Path]:
    """The files `server_files` name (a folder: every file under it, by name, hidden ones
    left out) by their path relative to the share, which is their frame name."""
    base = root.resolve()
    excluded = {share_path(root, path) for path in exclude}
    found: dict[str, Path] = {}
    for path in server_files:
        target = share_path(root, path)
        candidates = sorted(_files_under(target, base)) if target.is_dir() else [target]
        for candidate in candidates:
            if candidate not in excluded:
                found.setdefault(candidate.relative_to(base).as_posix(), candidate)
    if not found:
        raise ShareError("server_files names no file")
    return found


def _files_under(folder: Path, base: Path) -> list[Path]:
    files = []
    for entry in folder.rglob("*"):
        if any(part.startswith(".") for part in entry.relative_to(folder).parts):
            continue
        target = entry.resolve()
        if not target.is_relative_to(base):
            raise ShareError(f"{entry.relative_to(base).as_posix()!r} leads out of the share")
        if target.is_file():
            files.append(target)
    return files


def stage_share_files(files: dict[str, Path], upload_dir: Path) -> None:
    """Copies the share files into the task's upload folder, in order, as if uploaded."""
    upload_dir.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        target = upload_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(source, target)
        except FileNotFoundError:
            raise ShareError(f"{name!r} is no longer in the share") from None
    record_uploads(upload_dir, list(files))
