"""Hostile uploads: XML entity attacks, zip slip, archive bombs, oversized or broken files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from core.annotations import LabeledData
from tests.formats import samples
from workers.formats import archives
from workers.formats.coco import import_coco
from workers.formats.coco_keypoints import export_coco_keypoints, import_coco_keypoints
from workers.formats.cvat_import import import_cvat
from workers.formats.dataset import FormatError, FrameInfo
from workers.formats.datumaro import export_datumaro, import_datumaro
from workers.formats.pascal_voc import export_pascal_voc, import_pascal_voc
from workers.formats.segmentation_mask import export_segmentation_mask, import_segmentation_mask

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE annotations [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotations><image id="0" name="img0.jpg"><tag label="scene">
<attribute name="weather">&lol9;</attribute></tag></image></annotations>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE annotations [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<annotations><image id="0" name="img0.jpg"><tag label="scene">
<attribute name="weather">&secret;</attribute></tag></image></annotations>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE annotations SYSTEM "http://127.0.0.1:9/evil.dtd">
<annotations/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE annotations [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x"> %remote;]>
<annotations/>"""

UNDECLARED_ENTITY = b"""<annotations><image id="0" name="&nope;"/></annotations>"""

DEEP = b"<annotations>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</annotations>"


def _zip(tmp_path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return samples.write(tmp_path, "upload.zip", buffer.getvalue())


def _import_cvat(path: Path) -> None:
    import_cvat(path, samples.labels(), samples.frames())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (BILLION_LAUGHS, "declares entities"),
        (EXTERNAL_ENTITY, "declares entities"),
        (EXTERNAL_DTD, "external DTD"),
        (PARAMETER_ENTITY, "entit|malformed"),
        (UNDECLARED_ENTITY, "malformed"),
        (DEEP, "malformed"),
    ],
)
def test_xml_attacks_are_refused(tmp_path: Path, document: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        _import_cvat(samples.write(tmp_path, "evil.xml", document))


def test_xml_attacks_inside_a_zip_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="entities"):
        _import_cvat(_zip(tmp_path, {"annotations.xml": BILLION_LAUGHS}))


@pytest.mark.parametrize(
    "name", ["../annotations.xml", "a/../../annotations.xml", "/etc/annotations.xml", "C:/x.xml"]
)
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    path = _zip(tmp_path, {"annotations.xml": b"<annotations/>", name: b"<annotations/>"})
    with pytest.raises(FormatError, match="zip slip"):
        _import_cvat(path)


def test_backslash_zip_slip_is_refused(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"..\\evil.json": b"{}"})
    with pytest.raises(FormatError, match="zip slip"):
        import_coco(path, samples.labels(), samples.frames())


def test_a_highly_compressed_member_is_an_archive_bomb(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"annotations.xml": b"<annotations/>", "big.bin": bytes(8 << 20)})
    with pytest.raises(FormatError, match="archive bomb"):
        _import_cvat(path)


def test_too_many_members_is_an_archive_bomb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archives, "MAX_MEMBERS", 3)
    path = _zip(tmp_path, {f"f{i}.txt": b"x" for i in range(4)})
    with pytest.raises(FormatError, match="archive bomb: more than 3 members"):
        _import_cvat(path)


def test_too_much_uncompressed_data_is_an_archive_bomb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archives, "MAX_TOTAL_BYTES", 1000)
    path = _zip(tmp_path, {"a.bin": b"x" * 600, "b.bin": b"y" * 600}, zipfile.ZIP_STORED)
    with pytest.raises(FormatError, match="archive bomb: more than 1000 bytes"):
        _import_cvat(path)


def test_an_oversized_annotation_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archives, "MAX_ANNOTATION_BYTES", 100)
    with pytest.raises(FormatError, match="larger than 100 bytes"):
        _import_cvat(samples.write(tmp_path, "big.xml", b"<annotations>" + b" " * 200))
    with pytest.raises(FormatError, match="larger than 100 bytes"):
        _import_cvat(_zip(tmp_path, {"annotations.xml": b"<annotations>" + b" " * 200}))


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_corrupted_member_is_refused(tmp_path: Path, method: int) -> None:
    good = _zip(tmp_path, {"annotations.xml": b"<annotations/>" * 50}, method).read_bytes()
    data_start = 30 + len("annotations.xml")
    broken = good[: data_start + 2] + b"\xff" * 8 + good[data_start + 10 :]
    with pytest.raises(FormatError, match="cannot be read"):
        _import_cvat(samples.write(tmp_path, "broken.zip", broken))


def test_an_archive_without_annotation_files_is_refused(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"images/a.jpg": b"x"})
    with pytest.raises(FormatError, match="no .xml"):
        _import_cvat(path)
    with pytest.raises(FormatError, match="no .json"):
        import_coco(path, samples.labels(), samples.frames())


def test_binary_garbage_is_refused(tmp_path: Path) -> None:
    path = samples.write(tmp_path, "noise.bin", bytes(range(256)) * 4)
    with pytest.raises(FormatError):
        _import_cvat(path)
    with pytest.raises(FormatError):
        import_coco(path, samples.labels(), samples.frames())


def test_member_names_are_judged_strictly() -> None:
    assert archives.unsafe_member_name("../x")
    assert archives.unsafe_member_name("a/b/../../../x")
    assert archives.unsafe_member_name("/abs")
    assert archives.unsafe_member_name("\\\\server\\share")
    assert not archives.unsafe_member_name("a/b..c/x.xml")
    assert not archives.unsafe_member_name("annotations.xml")
    assert archives.safe_archive_name("../../etc/passwd") == "etc/passwd"
    assert archives.safe_archive_name("/dir/./img.png") == "dir/img.png"


NEW_IMPORTERS = [
    import_datumaro,
    import_pascal_voc,
    import_segmentation_mask,
    import_coco_keypoints,
]


@pytest.mark.parametrize("importer", NEW_IMPORTERS)
@pytest.mark.parametrize("name", ["../annotations/default.json", "/etc/SegmentationClass/a.png"])
def test_zip_slip_is_refused_by_every_format(tmp_path: Path, importer, name: str) -> None:
    path = _zip(tmp_path, {name: b"{}", "Annotations/a.xml": b"<annotation/>"})
    with pytest.raises(FormatError, match="zip slip"):
        importer(path, samples.labels(), samples.frames())


@pytest.mark.parametrize("importer", NEW_IMPORTERS)
def test_an_archive_bomb_is_refused_by_every_format(tmp_path: Path, importer) -> None:
    path = _zip(tmp_path, {"annotations/default.json": b"{}", "big.bin": bytes(8 << 20)})
    with pytest.raises(FormatError, match="archive bomb"):
        importer(path, samples.labels(), samples.frames())


@pytest.mark.parametrize("importer", NEW_IMPORTERS)
def test_binary_garbage_is_refused_by_every_format(tmp_path: Path, importer) -> None:
    path = samples.write(tmp_path, "noise.bin", bytes(range(256)) * 4)
    with pytest.raises(FormatError):
        importer(path, samples.labels(), samples.frames())


@pytest.mark.parametrize(
    "exporter",
    [export_datumaro, export_pascal_voc, export_segmentation_mask, export_coco_keypoints],
)
def test_exports_never_name_a_member_outside_the_archive(exporter) -> None:
    data = samples.dataset(LabeledData(tags=samples.tags()))
    data.frames = [FrameInfo(0, "../../evil.jpg", 10, 10), FrameInfo(1, "/abs/x.png", 10, 10)]
    data.labels[3].name = "../scene"
    content, _ = samples.export_to_bytes(exporter, data, images=lambda i: (f"../../i{i}.jpg", b"x"))
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = archive.namelist()
    assert names and not [name for name in names if archives.unsafe_member_name(name)]
