"""Archives of task media (ZIP, tar, tar.gz/bz2/xz), vetted before anything is written.

An uploaded archive is refused as a whole, before a single member is extracted, when:

- a member's name is absolute or has a ``..`` component ("zip slip"), or a tar member is a
  link, a device or a FIFO (each can make an extractor write outside its folder);
- it has more than ``MAX_MEMBERS`` members, more than ``MAX_TOTAL_BYTES`` in all, or it
  unpacks to more than ``MAX_RATIO`` times its own size ("archive bomb": images and videos
  hardly compress, so a high ratio means padding); a ZIP member compressed more than that is
  refused too;
- a member is neither an image nor a video (hidden files and ``__MACOSX/`` are skipped).

Members are then extracted under their relative paths, reading no more than each declared
size, so the names of the task's frames are the paths inside the archive.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from workers.formats.archives import unsafe_member_name
from workers.images import IMAGE_EXTENSIONS, MediaError
from workers.media.video import VIDEO_EXTENSIONS

MAX_MEMBERS = 100_000
MAX_TOTAL_BYTES = 64 << 30
MAX_RATIO = 50
RATIO_MIN_BYTES = 1 << 20  # small archives may compress well without harm
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
_UNREADABLE = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError)
_SKIPPED_PREFIXES = ("__MACOSX/",)


@dataclass(frozen=True)
class Member:
    name: str  # the relative path, with forward slashes
    size: int
    packed_size: int | None  # compressed size, where the format tells it per member


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_media(archive: Path, target: Path) -> list[str]:
    """Extracts the media files of ``archive`` under ``target``; their relative paths in
    archive order. Refuses a hostile or non-media archive before writing anything."""
    try:
        if zipfile.is_zipfile(archive):
            return _extract_zip(archive, target)
        if tarfile.is_tarfile(archive):
            return _extract_tar(archive, target)
    except _UNREADABLE as error:
        raise MediaError(f"{archive.name} cannot be read as an archive ({error})") from error
    raise MediaError(f"{archive.name} is not a ZIP or tar archive")


def _extract_zip(archive: Path, target: Path) -> list[str]:
    with zipfile.ZipFile(archive) as opened:
        infos = [info for info in opened.infolist() if not info.is_dir()]
        members = [Member(info.filename, info.file_size, info.compress_size) for info in infos]
        kept = _vet(archive, members)
        for info in infos:
            if info.filename in kept:
                with opened.open(info) as stream:
                    write_member(stream, target, info.filename, info.file_size)
    return [name for name in (m.name for m in members) if name in kept]


def _extract_tar(archive: Path, target: Path) -> list[str]:
    with tarfile.open(archive) as opened:
        infos = []
        for info in opened:  # reads headers only; stops at MAX_MEMBERS
            if len(infos) >= MAX_MEMBERS:
                raise MediaError(f"{archive.name}: archive bomb, more than {MAX_MEMBERS} members")
            if info.isdir():
                continue
            if not info.isfile():
                raise MediaError(
                    f"{archive.name}: {info.name!r} is a link or special file; "
                    "only regular files are accepted"
                )
            infos.append(info)
        members = [Member(info.name, info.size, None) for info in infos]
        kept = _vet(archive, members)
        for info in infos:
            if info.name in kept:
                stream = opened.extractfile(info)
                assert stream is not None  # regular files always have one
                write_member(stream, target, info.name, info.size)
    return [name for name in (m.name for m in members) if name in kept]


def _vet(archive: Path, members: list[Member]) -> set[str]:
    """The names of the media members; MediaError if the archive must be refused."""
    if len(members) > MAX_MEMBERS:
        raise MediaError(f"{archive.name}: archive bomb, more than {MAX_MEMBERS} members")
    total = sum(member.size for member in members)
    if total > MAX_TOTAL_BYTES:
        raise MediaError(f"{archive.name}: archive bomb, more than {MAX_TOTAL_BYTES} bytes")
    packed = max(archive.stat().st_size, 1)
    if total > RATIO_MIN_BYTES and total > MAX_RATIO * packed:
        raise MediaError(
            f"{archive.name}: archive bomb, it unpacks to {total} bytes, "
            f"more than {MAX_RATIO} times its size"
        )
    kept: set[str] = set()
    for member in members:
        if unsafe_member_name(member.name):
            raise MediaError(f"{archive.name}: zip slip, {member.name!r} leaves the archive")
        if member.packed_size is not None and member.size > RATIO_MIN_BYTES:
            if member.size > MAX_RATIO * max(member.packed_size, 1):
                raise MediaError(
                    f"{archive.name}: archive bomb, {member.name!r} is compressed more than "
                    f"{MAX_RATIO} times"
                )
        if _skipped(member.name):
            continue
        if PurePosixPath(member.name).suffix.lower() not in MEDIA_EXTENSIONS:
            raise MediaError(f"{archive.name}: {member.name!r} is not an image or a video")
        if member.name in kept:
            raise MediaError(f"{archive.name}: {member.name!r} appears twice")
        kept.add(member.name)
    if not kept:
        raise MediaError(f"{archive.name} holds no images or videos")
    return kept


def _skipped(name: str) -> bool:
    return name.startswith(_SKIPPED_PREFIXES) or any(
        part.startswith(".") for part in PurePosixPath(name).parts
    )


def write_member(stream: BinaryIO, target: Path, name: str, size: int) -> None:
    """Writes one vetted member at its relative path under ``target``, reading at most its
    declared size; refuses a path that resolves outside ``target``."""
    path = target.joinpath(*PurePosixPath(name).parts)
    if not path.resolve().is_relative_to(target.resolve()):
        raise MediaError(f"zip slip: {name!r} leaves the archive")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as out:
        copied = _copy_at_most(stream, out, size)
    if copied != size:
        raise MediaError(f"{name} is cut short in its archive")


def _copy_at_most(stream: BinaryIO, out: BinaryIO, limit: int) -> int:
    copied = 0
    while copied < limit:
        block = stream.read(min(1 << 20, limit - copied))
        if not block:
            break
        out.write(block)
        copied += len(block)
    return copied
