"""Tests for workers.images on real files written with OpenCV/numpy in tmp_path."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from workers import images
from workers.images import (
    IMAGE_EXTENSIONS,
    FrameInfo,
    MediaError,
    build_chunk_zip,
    make_preview,
    probe_and_compress,
    probe_image,
    write_compressed,
)


def _gradient(height: int, width: int, channels: int, dtype: type = np.uint8) -> np.ndarray:
    peak = np.iinfo(dtype).max
    ramp = np.linspace(0, peak, width, dtype=np.float64)
    plane = np.tile(ramp, (height, 1)).astype(dtype)
    if channels == 1:
        return plane
    return np.dstack([plane] * channels)


def _write(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


@pytest.fixture
def samples(tmp_path: Path) -> dict[str, Path]:
    rgba = _gradient(31, 47, 4)
    rgba[..., 3] = 0  # fully transparent: alpha must not leak into the JPEG
    return {
        "png": _write(tmp_path / "color.png", _gradient(40, 60, 3)),
        "jpeg": _write(tmp_path / "photo.jpg", _gradient(50, 70, 3)),
        "gray": _write(tmp_path / "gray.png", _gradient(33, 21, 1)),
        "gray_jpeg": _write(tmp_path / "gray.jpg", _gradient(24, 18, 1)),
        "rgba": _write(tmp_path / "rgba.png", rgba),
        "png16": _write(tmp_path / "deep.png", _gradient(20, 30, 3, np.uint16)),
        "gray16": _write(tmp_path / "deep_gray.png", _gradient(12, 16, 1, np.uint16)),
        "bmp": _write(tmp_path / "bitmap.bmp", _gradient(15, 25, 3)),
        "webp": _write(tmp_path / "web.webp", _gradient(16, 26, 3)),
        "tiff": _write(tmp_path / "scan.tiff", _gradient(17, 27, 3)),
    }


SIZES = {
    "png": (60, 40),
    "jpeg": (70, 50),
    "gray": (21, 33),
    "gray_jpeg": (18, 24),
    "rgba": (47, 31),
    "png16": (30, 20),
    "gray16": (16, 12),
    "bmp": (25, 15),
    "webp": (26, 16),
    "tiff": (27, 17),
}


# --- probe_image ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SIZES))
def test_probe_reports_name_and_size(samples: dict[str, Path], kind: str) -> None:
    width, height = SIZES[kind]
    assert probe_image(samples[kind]) == FrameInfo(samples[kind].name, width, height)


def test_probe_text_renamed_jpg(tmp_path: Path) -> None:
    fake = tmp_path / "img3.jpg"
    fake.write_text("this is not an image\n")
    with pytest.raises(MediaError, match="img3.jpg is not an image"):
        probe_image(fake)


def test_probe_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.touch()
    with pytest.raises(MediaError, match="empty.png is empty"):
        probe_image(empty)


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot be read"):
        probe_image(tmp_path / "nope.jpg")


def test_media_error_is_value_error() -> None:
    assert issubclass(MediaError, ValueError)


def _png_header_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def test_probe_rejects_huge_png_without_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_claiming(30_000, 30_000))
    with pytest.raises(MediaError, match="too large"):
        probe_image(bomb)


def test_decode_rejects_huge_png_before_opencv(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_claiming(20_000, 20_000))  # 400 Mpx > MAX_PIXELS
    with pytest.raises(MediaError, match="too large"):
        write_compressed(bomb, tmp_path / "out.jpg", 70)


def test_probe_rejects_huge_jpeg_header(tmp_path: Path, samples: dict[str, Path]) -> None:
    data = bytearray(samples["jpeg"].read_bytes())
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xC0)
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(bytes(data))
    with pytest.raises(MediaError, match="too large"):
        probe_image(bomb)


def test_probe_truncated_png_header(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(MediaError, match="not an image"):
        probe_image(broken)


def test_pixel_limit_uses_product(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    path = _write(tmp_path / "small.png", _gradient(11, 10, 3))  # 110 px
    with pytest.raises(MediaError, match="too large"):
        probe_image(path)


# --- write_compressed -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SIZES))
def test_compressed_is_same_size_8bit_bgr_jpeg(
    samples: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    dst = tmp_path / f"{kind}.compressed.jpeg"
    write_compressed(samples[kind], dst, 70)
    data = dst.read_bytes()
    assert data[:2] == b"\xff\xd8"
    decoded = _decode(data)
    width, height = SIZES[kind]
    assert decoded.shape == (height, width, 3)
    assert decoded.dtype == np.uint8


def test_compressed_16bit_is_scaled_not_black(samples: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / "deep.jpeg"
    write_compressed(samples["png16"], dst, 95)
    decoded = _decode(dst.read_bytes())
    assert decoded[:, -1].mean() > 240  # the brightest column stays bright
    assert decoded[:, 0].mean() < 15


def test_compressed_rgba_drops_alpha(samples: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / "rgba.jpeg"
    write_compressed(samples["rgba"], dst, 95)
    decoded = _decode(dst.read_bytes())
    assert decoded[:, -1].mean() > 240  # color kept although alpha was 0


def test_quality_changes_output(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    src = _write(tmp_path / "noise.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    low, high = tmp_path / "low.jpeg", tmp_path / "high.jpeg"
    write_compressed(src, low, 5)
    write_compressed(src, high, 100)
    assert low.stat().st_size < high.stat().st_size


@pytest.mark.parametrize("kind", sorted(SIZES))
def test_probe_and_compress_is_probe_then_compress(
    samples: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    together, apart = tmp_path / "together.jpeg", tmp_path / "apart.jpeg"
    info = probe_and_compress(samples[kind], together, 70)
    write_compressed(samples[kind], apart, 70)
    assert info == probe_image(samples[kind])
    assert together.read_bytes() == apart.read_bytes()


@pytest.mark.parametrize("quality", [0, 101, -5, True, 50.0])
def test_bad_quality_rejected(samples: dict[str, Path], tmp_path: Path, quality: object) -> None:
    with pytest.raises(ValueError, match="quality"):
        write_compressed(samples["png"], tmp_path / "x.jpeg", quality)  # type: ignore[arg-type]


def test_compressed_of_non_image_leaves_no_output(tmp_path: Path) -> None:
    fake = tmp_path / "img3.jpg"
    fake.write_bytes(b"\xff\xd8 not really a jpeg")
    dst = tmp_path / "out.jpeg"
    with pytest.raises(MediaError):
        write_compressed(fake, dst, 70)
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == [fake]


# --- build_chunk_zip ------------------------------------------------------------------------


def test_chunk_zip_members_in_order_and_stored(samples: dict[str, Path]) -> None:
    frames = [samples["png"], samples["jpeg"], samples["bmp"]]
    names = ["000002.png", "000000.jpg", "000001.bmp"]
    data = build_chunk_zip(frames, names)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        assert [info.filename for info in infos] == names
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        for frame, name in zip(frames, names, strict=True):
            assert archive.read(name) == frame.read_bytes()
        assert archive.testzip() is None


def test_chunk_zip_is_deterministic(samples: dict[str, Path]) -> None:
    frames = [samples["png"], samples["gray"]]
    names = ["000000.png", "000001.png"]
    assert build_chunk_zip(frames, names) == build_chunk_zip(frames, names)


def test_chunk_zip_of_nothing_is_a_valid_empty_zip() -> None:
    with zipfile.ZipFile(io.BytesIO(build_chunk_zip([], []))) as archive:
        assert archive.infolist() == []


def test_chunk_zip_argument_checks(samples: dict[str, Path]) -> None:
    with pytest.raises(ValueError):
        build_chunk_zip([samples["png"]], ["a.png", "b.png"])
    with pytest.raises(ValueError, match="unique"):
        build_chunk_zip([samples["png"], samples["jpeg"]], ["a.png", "a.png"])


# --- make_preview ---------------------------------------------------------------------------


def test_preview_is_small_jpeg_with_aspect_ratio(tmp_path: Path) -> None:
    src = _write(tmp_path / "wide.png", _gradient(300, 1000, 3))
    preview = _decode(make_preview(src))
    assert preview.shape == (77, 256, 3)


def test_preview_does_not_upscale(samples: dict[str, Path]) -> None:
    assert _decode(make_preview(samples["rgba"])).shape == (31, 47, 3)


def test_preview_custom_side_and_gray16(samples: dict[str, Path]) -> None:
    assert _decode(make_preview(samples["gray16"], max_side=8)).shape == (6, 8, 3)


def test_preview_of_non_image(tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("hello")
    with pytest.raises(MediaError):
        make_preview(fake)


# --- extensions -----------------------------------------------------------------------------


def test_image_extensions() -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"} <= IMAGE_EXTENSIONS
    assert ".txt" not in IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)
