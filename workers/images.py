"""Image-set media handling with OpenCV: probing, compressed frames, chunk ZIPs, previews.

What this module holds:

- ``FrameInfo`` / ``probe_image``: an image's name and stored size (EXIF orientation is not
  applied, consistently everywhere here). PNG and JPEG sizes come from the file header
  without decoding pixels; other formats are decoded.
- ``write_compressed``: the ``quality=compressed`` frame, a baseline 8-bit 3-channel JPEG of
  the same size (16-bit/float are auto-scaled like CVAT does, alpha is dropped, grayscale is
  expanded).
- ``build_chunk_zip`` / ``zip_members``: an image-set chunk, a deterministic stored
  (uncompressed) ZIP of files or of bytes.
- ``encode_jpeg`` / ``encode_png``: a decoded (video) frame as served.
- ``make_preview`` / ``preview_of``: the task/job preview JPEG thumbnail of a file or a
  decoded frame.
- ``MediaError``: a user-facing reason why a file cannot be used.

Hostile input is bounded: empty or oversized files, images above ``MAX_PIXELS`` or with a side
above ``MAX_SIDE`` (JPEG's own limit) are rejected before their pixels are decoded, and
OpenCV's own decoder limit (``OPENCV_IO_MAX_IMAGE_PIXELS``) is set to the same bound unless
the environment already sets it.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_PIXELS = 200_000_000
MAX_SIDE = 65_500  # the largest side a JPEG can have
MAX_FILE_BYTES = 1 << 30

# OpenCV reads this when it is first imported: only effective if cv2 was not imported before.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .dib .webp .tif .tiff .gif .pbm .pgm .ppm .pnm .jp2 .avif"
    " .ras .sr".split()
)

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})
_CV_INTEGER_DTYPES = (np.int8, np.uint16, np.int16, np.int32)


class MediaError(ValueError):
    """A file cannot be used as media; the message is meant for the end user."""


@dataclass(frozen=True)
class FrameInfo:
    name: str
    width: int
    height: int


# --- public API -----------------------------------------------------------------------------


def probe_image(path: Path) -> FrameInfo:
    """Name and size of an image; MediaError if it is not a usable image."""
    data = _read_bytes(path)
    size = _header_size(data)
    if size is None:
        height, width = _decode(data, path.name).shape[:2]
    else:
        width, height = size
        _check_size(width, height, path.name)
    return FrameInfo(name=path.name, width=width, height=height)


def write_compressed(src: Path, dst: Path, quality: int) -> None:
    """Write ``src`` to ``dst`` as a same-size 8-bit BGR JPEG at ``quality`` (1..100)."""
    _check_quality(quality)
    image = _to_bgr8(_decode(_read_bytes(src), src.name), src.name)
    _atomic_write(dst, _encode_jpeg(image, quality, src.name))


def probe_and_compress(src: Path, dst: Path, quality: int) -> FrameInfo:
    """`probe_image` and `write_compressed` with one read of ``src``. ``dst`` is written in
    place, not through a temp file: for a folder that is published as a whole afterwards."""
    _check_quality(quality)
    data = _read_bytes(src)
    decoded = _decode(data, src.name)
    size = _header_size(data)
    height, width = decoded.shape[:2] if size is None else (size[1], size[0])
    _check_size(width, height, src.name)
    dst.write_bytes(_encode_jpeg(_to_bgr8(decoded, src.name), quality, src.name))
    return FrameInfo(name=src.name, width=width, height=height)


def build_chunk_zip(frames: Sequence[Path], member_names: Sequence[str]) -> bytes:
    """A stored (not deflated) ZIP of ``frames`` named ``member_names``, in that order.

    Timestamps are fixed, so the same inputs always give the same bytes.
    """
    if len(frames) != len(member_names):
        raise ValueError(f"{len(frames)} frames but {len(member_names)} member names")
    return zip_members(
        [(name, frame.read_bytes()) for frame, name in zip(frames, member_names, strict=True)]
    )


def zip_members(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A stored, deterministic ZIP of ``(name, bytes)`` members, in that order."""
    names = [name for name, _ in members]
    if len(set(names)) != len(names):
        raise ValueError("chunk member names must be unique")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int, name: str) -> bytes:
    """An 8-bit BGR image as a JPEG at ``quality`` (1..100)."""
    _check_quality(quality)
    return _encode_jpeg(image, quality, name)


def encode_png(image: np.ndarray, name: str) -> bytes:
    """An 8-bit BGR image as a PNG, compressed lightly (speed over size)."""
    try:
        ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    except cv2.error as exc:
        raise MediaError(f"{name} cannot be converted to PNG") from exc
    if not ok:
        raise MediaError(f"{name} cannot be converted to PNG")
    return buffer.tobytes()


def preview_of(image: np.ndarray, name: str, max_side: int = 256) -> bytes:
    """A JPEG thumbnail of a decoded BGR image whose longer side is at most ``max_side``."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    height, width = image.shape[:2]
    scale = max_side / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return _encode_jpeg(image, 85, name)


def make_preview(src: Path, max_side: int = 256) -> bytes:
    """A JPEG thumbnail of ``src`` whose longer side is at most ``max_side`` (no upscaling)."""
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    return preview_of(_to_bgr8(_decode(_read_bytes(src), src.name), src.name), src.name, max_side)


# --- reading and decoding -------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MediaError(f"{path.name} cannot be read") from exc
    if size == 0:
        raise MediaError(f"{path.name} is empty")
    if size > MAX_FILE_BYTES:
        raise MediaError(f"{path.name} is too large ({size} bytes)")
    return path.read_bytes()


def _decode(data: bytes, name: str) -> np.ndarray:
    size = _header_size(data)
    if size is not None:
        _check_size(*size, name)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. OpenCV's own pixel limit
        raise MediaError(f"{name} is not a supported image or is too large") from exc
    if image is None or image.size == 0:
        raise MediaError(f"{name} is not an image (or is corrupt)")
    _check_size(image.shape[1], image.shape[0], name)
    return image


def _check_size(width: int, height: int, name: str) -> None:
    if width <= 0 or height <= 0:
        raise MediaError(f"{name} has an invalid size {width}x{height}")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise MediaError(
            f"{name} is too large ({width}x{height}); the limit is {MAX_PIXELS} pixels "
            f"and {MAX_SIDE} pixels per side"
        )


def _header_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from a PNG or JPEG header, or None if not found."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return (width, height) if height else None  # height 0: defined later (DNL)
        if marker in (0xD9, 0xDA) or length < 2:  # EOI / SOS before any SOF
            return None
        pos += 2 + length
    return None


# --- conversion and encoding ----------------------------------------------------------------


def _to_bgr8(image: np.ndarray, name: str) -> np.ndarray:
    """8-bit, 3-channel BGR version of a decoded image of any depth and channel count."""
    image = _to_8bit(image)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 2:  # gray + alpha
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2BGR)
    if channels == 3:
        return image
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise MediaError(f"{name} has an unsupported number of channels ({channels})")


def _to_8bit(image: np.ndarray) -> np.ndarray:
    """Scale non-8-bit pixels into 0..255 by the maximum value, as CVAT does.

    Float data already normalized to 0..1 keeps its scale; NaN and infinities become 0.
    """
    if image.dtype == np.uint8:
        return image
    floating = np.issubdtype(image.dtype, np.floating)
    if floating:
        image = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    elif image.dtype not in _CV_INTEGER_DTYPES:
        image = image.astype(np.float32)
    peak = float(image.max())
    if peak <= 0 or (floating and peak <= 1.0):
        peak = 1.0 if floating else 255.0
    return cv2.convertScaleAbs(image, alpha=255.0 / peak)


def _encode_jpeg(image: np.ndarray, quality: int, name: str) -> bytes:
    try:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    except cv2.error as exc:
        raise MediaError(f"{name} cannot be converted to JPEG") from exc
    if not ok:
        raise MediaError(f"{name} cannot be converted to JPEG")
    return buffer.tobytes()


def _check_quality(quality: int) -> None:
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be an integer in 1..100, got {quality!r}")


def _atomic_write(dst: Path, data: bytes) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
