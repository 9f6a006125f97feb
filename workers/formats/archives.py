"""Reading uploaded annotation files safely (a ZIP or one bare XML/JSON file), and writing
frames into an export ZIP.

Only the annotation members an importer asks for are read, and nothing is extracted to disk.
Before anything is read the whole archive is vetted:

- a member with an absolute path or a ``..`` component is refused ("zip slip"), even though
  nothing is written, because such an archive was made to attack an extractor;
- more than ``MAX_MEMBERS`` members, more than ``MAX_TOTAL_BYTES`` uncompressed, or a large
  member compressed more than ``MAX_RATIO`` times is refused ("archive bomb");
- an annotation file (member or bare) above ``MAX_ANNOTATION_BYTES`` is refused.

The sizes a ZIP declares are the sizes Python's zipfile will deliver (it stops there and
checks the CRC), so checking them up front is sound; reads are capped again regardless.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath

from workers.formats.dataset import FormatError, FrameInfo, ImageSource

MAX_MEMBERS = 100_000
MAX_TOTAL_BYTES = 32 << 30
MAX_ANNOTATION_BYTES = 512 << 20
MAX_RATIO = 200
RATIO_MIN_BYTES = 1 << 20  # small members may compress well without harm

_UNREADABLE = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error)
_DRIVE = re.compile(r"^[A-Za-z]:")
_IGNORED_PREFIXES = ("__MACOSX/",)


def read_annotation_files(
    path: Path, suffixes: Iterable[str], member_filter: Callable[[str], bool] | None = None
) -> list[tuple[str, bytes]]:
    """The (name, bytes) of each annotation file: the members of a ZIP whose names end with
    one of ``suffixes`` (and pass ``member_filter``, when given), or the bare file itself."""
    wanted = tuple(suffix.lower() for suffix in suffixes)
    if not zipfile.is_zipfile(path):
        return [(path.name, _read_bare(path))]
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            check_members(members)
            chosen = [m for m in members if _is_wanted(m, wanted)]
            if member_filter is not None:
                chosen = [m for m in chosen if member_filter(m.filename)]
            return [(m.filename, _read_member(archive, m)) for m in chosen]
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        EOFError,
        zlib.error,
    ) as error:
        raise FormatError(f"the archive cannot be read: {error}") from error


def list_member_names(path: Path) -> list[str]:
    """The file names a vetted ZIP holds (none for a bare file), nothing read."""
    if not zipfile.is_zipfile(path):
        return []
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except _UNREADABLE as error:
        raise FormatError(f"the archive cannot be read: {error}") from error
    check_members(members)
    return [m.filename for m in members if _is_wanted(m, ("",))]


def check_members(members: list[zipfile.ZipInfo]) -> None:
    """Refuse an archive built to escape an extractor or to exhaust memory or disk."""
    if len(members) > MAX_MEMBERS:
        raise FormatError(f"archive bomb: more than {MAX_MEMBERS} members")
    total = 0
    for member in members:
        if unsafe_member_name(member.filename):
            raise FormatError(f"zip slip: the member name {member.filename!r} leaves the archive")
        total += member.file_size
        if total > MAX_TOTAL_BYTES:
            raise FormatError(f"archive bomb: more than {MAX_TOTAL_BYTES} bytes uncompressed")
        if member.file_size > RATIO_MIN_BYTES and member.file_size > MAX_RATIO * max(
            member.compress_size, 1
        ):
            raise FormatError(
                f"archive bomb: {member.filename!r} is compressed more than {MAX_RATIO} times"
            )


def unsafe_member_name(name: str) -> bool:
    """True for an absolute path, a drive letter or a ``..`` component."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return True
    return ".." in PurePosixPath(name.replace("\\", "/")).parts


def _is_wanted(member: zipfile.ZipInfo, suffixes: tuple[str, ...]) -> bool:
    if member.is_dir() or member.filename.startswith(_IGNORED_PREFIXES):
        return False
    return member.filename.lower().endswith(suffixes)


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    if member.file_size > MAX_ANNOTATION_BYTES:
        raise FormatError(f"{member.filename!r} is larger than {MAX_ANNOTATION_BYTES} bytes")
    with archive.open(member) as stream:
        data = stream.read(MAX_ANNOTATION_BYTES + 1)
    if len(data) > MAX_ANNOTATION_BYTES:
        raise FormatError(f"{member.filename!r} is larger than {MAX_ANNOTATION_BYTES} bytes")
    return data


def _read_bare(path: Path) -> bytes:
    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        raise FormatError(f"the file is larger than {MAX_ANNOTATION_BYTES} bytes")
    return path.read_bytes()


def safe_archive_name(name: str) -> str:
    """A member name for a file we write: relative, with no ``..`` and forward slashes."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", "..", ".")]
    if not parts:
        raise ValueError(f"{name!r} is not a usable file name")
    return "/".join(parts).lstrip("/")


def write_images(
    out: zipfile.ZipFile, frames: Sequence[FrameInfo], images: ImageSource, folder: str
) -> None:
    """Each frame's file, as ``images(index)`` names and returns it, under ``folder``."""
    for frame in frames:
        name, data = images(frame.index)
        out.writestr(f"{folder}/{safe_archive_name(name)}", data)
