"""CVAT for images / CVAT for video export and CVAT 1.1 import.

Not carried by "CVAT for images 1.1": track identity (a track comes back as its visible
per-frame shapes), the source (import sets "file", as CVAT does), ids, the occluded flag of
a skeleton itself; coordinates are rounded to two decimals. "CVAT for video 1.1" carries
tracks (keyframes, outside, occluded, attributes split into immutable/mutable) but no tags,
turns plain shapes into one-frame tracks, and drops a skeleton track's own outside/occluded.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import msgspec
import pytest
from lxml import etree

from core.annotations import LabeledData, Shape, TrackedShape
from tests.formats import samples
from workers.formats import cvat_import
from workers.formats.cvat_images import export_images, export_video
from workers.formats.cvat_import import import_cvat
from workers.formats.dataset import FormatError
from workers.formats.xml_safe import feed_events

GOLDEN = Path(__file__).parent / "golden"


def _xml(archive_bytes: bytes) -> etree._Element:
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        return etree.fromstring(archive.read("annotations.xml"))


def _import(tmp_path: Path, archive_bytes: bytes) -> LabeledData:
    path = samples.write(tmp_path, "upload.zip", archive_bytes)
    return import_cvat(path, samples.labels(), samples.frames())


def test_images_round_trip_carries_every_shape_kind_and_tags(tmp_path: Path) -> None:
    original = LabeledData(shapes=samples.every_shape(), tags=samples.tags())
    archive, warnings = samples.export_to_bytes(export_images, samples.dataset(original))
    assert warnings == []
    imported = _import(tmp_path, archive)
    assert samples.normalized(imported) == samples.normalized(original)
    assert all(s.source == "file" and s.id is None for s in imported.shapes)


def test_images_layout_follows_the_manual() -> None:
    original = LabeledData(shapes=samples.every_shape(), tags=samples.tags())
    root = _xml(samples.export_to_bytes(export_images, samples.dataset(original))[0])
    assert root.findtext("version") == "1.1"
    assert root.findtext("meta/task/name") == "sample task"
    assert root.findtext("meta/task/size") == "5"
    label_names = [label.findtext("name") for label in root.iterfind("meta/task/labels/label")]
    assert label_names == ["car", "person", "body", "head", "hand", "scene"]
    head = root.find("meta/task/labels/label[name='head']")
    assert head.findtext("parent") == "body"
    svg = root.findtext("meta/task/labels/label[name='body']/svg")
    assert 'data-label-name="head"' in svg and "data-label-id" not in svg
    speed = root.find("meta/task/labels/label[name='car']/attributes/attribute[name='speed']")
    assert speed.findtext("mutable") == "True" and speed.findtext("values") == "0\n100\n1"
    images = root.findall("image")
    assert [(i.get("id"), i.get("name")) for i in images][:2] == [
        ("0", "img0.jpg"),
        ("1", "dir/img1.png"),
    ]
    box = images[0].find("box")
    assert dict(box.attrib) == {
        "label": "car",
        "source": "manual",
        "occluded": "1",
        "xtl": "10.50",
        "ytl": "20.25",
        "xbr": "30.00",
        "ybr": "40.00",
        "rotation": "15.00",
        "z_order": "2",
        "group_id": "1",
    }
    assert [(a.get("name"), a.text) for a in box.findall("attribute")] == [
        ("model", "b"),
        ("speed", "5"),
        ("parked", "true"),
        ("note", "hi"),
    ]
    ellipse = images[2].find("ellipse")
    assert (ellipse.get("cx"), ellipse.get("rx"), ellipse.get("ry")) == ("50.00", "10.00", "5.00")
    assert images[2].find("cuboid").get("xbl1") == "14.00"
    mask = images[3].find("mask")
    assert (mask.get("rle"), mask.get("left"), mask.get("top")) == ("1, 4, 1", "5", "6")
    assert (mask.get("width"), mask.get("height")) == ("3", "2")
    assert images[1].find("points").get("points") == "3.00,3.00;4.00,4.00;5.50,5.50"
    skeleton = images[4].find("skeleton")
    assert "occluded" not in skeleton.attrib
    nodes = skeleton.findall("points")
    assert [(n.get("label"), n.get("outside")) for n in nodes] == [("head", "0"), ("hand", "1")]
    assert images[0].find("tag").get("label") == "scene"


def test_images_export_writes_tracks_as_visible_frames(tmp_path: Path) -> None:
    original = LabeledData(tracks=[samples.box_track()])
    archive, _ = samples.export_to_bytes(export_images, samples.dataset(original))
    imported = _import(tmp_path, archive)
    assert imported.tracks == []
    assert [s.frame for s in imported.shapes] == [0, 1, 2]
    middle = imported.shapes[1]
    assert middle.points == [5.0, 5.0, 15.0, 15.0]
    names = {a.spec_id: a.value for a in middle.attributes}
    assert names == {
        samples.SPEED: "1",
        samples.PARKED: "false",
        samples.MODEL: "a",
        samples.NOTE: "t",
    }


def test_images_export_writes_frame_files_when_asked() -> None:
    original = LabeledData()
    archive, _ = samples.export_to_bytes(
        export_images,
        samples.dataset(original),
        images=lambda index: (samples.frames()[index].name, b"IMG%d" % index),
    )
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.read("images/dir/img1.png") == b"IMG1"
        assert len([n for n in opened.namelist() if n.startswith("images/")]) == 5


def test_video_round_trip_carries_tracks(tmp_path: Path) -> None:
    tracks = [samples.box_track(), samples.polygon_track(), samples.skeleton_track()]
    original = LabeledData(tracks=tracks)
    archive, warnings = samples.export_to_bytes(export_video, samples.dataset(original))
    assert warnings == []
    imported = _import(tmp_path, archive)
    assert samples.normalized(imported) == samples.normalized(original)


def test_video_layout_marks_keyframes_and_outside() -> None:
    original = LabeledData(tracks=[samples.box_track()], tags=samples.tags())
    archive, warnings = samples.export_to_bytes(export_video, samples.dataset(original))
    assert warnings == ["2 tags were left out (not carried)"]
    track = _xml(archive).find("track")
    assert (track.get("id"), track.get("label"), track.get("source")) == ("0", "car", "manual")
    boxes = track.findall("box")
    assert [(b.get("frame"), b.get("keyframe"), b.get("outside")) for b in boxes] == [
        ("0", "1", "0"),
        ("1", "0", "0"),
        ("2", "1", "0"),
        ("3", "1", "1"),
    ]
    assert boxes[1].get("xtl") == "5.00"
    assert [a.get("name") for a in boxes[0].findall("attribute")] == [
        "speed",
        "parked",
        "model",
        "note",
    ]


def test_video_export_turns_shapes_into_one_frame_tracks(tmp_path: Path) -> None:
    shape = Shape("rectangle", samples.CAR, 1, [1.0, 2.0, 3.0, 4.0])
    last = Shape("polygon", samples.PERSON, 4, [1.0, 1.0, 5.0, 1.0, 5.0, 5.0])
    archive, _ = samples.export_to_bytes(
        export_video, samples.dataset(LabeledData(shapes=[shape, last]))
    )
    imported = _import(tmp_path, archive)
    assert imported.shapes == []
    first, second = imported.tracks
    assert [(s.frame, s.outside) for s in first.shapes] == [(1, False), (2, True)]
    assert [(s.frame, s.outside) for s in second.shapes] == [(4, False)]


def test_golden_images_file_imports(tmp_path: Path) -> None:
    path = GOLDEN / "annotations.xml"
    imported = import_cvat(path, samples.labels(), samples.frames())
    kinds = [(s.frame, s.type) for s in imported.shapes]
    assert kinds == [
        (0, "rectangle"),
        (0, "polygon"),
        (1, "polyline"),
        (1, "points"),
        (2, "ellipse"),
        (2, "cuboid"),
        (3, "mask"),
        (4, "skeleton"),
    ]
    box, polygon = imported.shapes[0], imported.shapes[1]
    assert box.points == [10.5, 20.25, 30.0, 40.0] and box.rotation == 15.0
    assert box.occluded and box.group == 1 and box.z_order == 2
    assert {a.spec_id: a.value for a in box.attributes} == {
        samples.MODEL: "b",
        samples.SPEED: "5",
        samples.PARKED: "true",
    }
    assert polygon.points == [1.0, 2.0, 10.0, 2.0, 10.0, 12.0]
    assert imported.shapes[4].points == [50.0, 40.0, 60.0, 35.0]
    assert imported.shapes[5].points == samples.CUBOID
    assert imported.shapes[6].points == samples.mask_points()
    skeleton = imported.shapes[7]
    assert [(e.label_id, e.points, e.outside) for e in skeleton.elements] == [
        (samples.HEAD, [10.0, 10.0], False),
        (samples.HAND, [20.0, 20.0], True),
    ]
    assert [(t.frame, t.label_id) for t in imported.tags] == [(0, samples.SCENE)]


def test_golden_video_file_imports_keyframes_only(tmp_path: Path) -> None:
    imported = import_cvat(GOLDEN / "video.xml", samples.labels(), samples.frames())
    box, skeleton = imported.tracks
    assert [(s.frame, s.outside, s.points) for s in box.shapes] == [
        (0, False, [0.0, 0.0, 10.0, 10.0]),
        (2, False, [10.0, 10.0, 20.0, 20.0]),
        (3, True, [10.0, 10.0, 20.0, 20.0]),
    ]
    assert [a.spec_id for a in box.attributes] == [samples.MODEL]
    assert box.shapes[0].attributes[0].spec_id == samples.SPEED
    assert [s.frame for s in skeleton.shapes] == [1]
    head, hand = skeleton.elements
    assert (head.label_id, [s.frame for s in head.shapes]) == (samples.HEAD, [1, 3])
    assert [(s.frame, s.outside) for s in hand.shapes] == [(1, False), (2, True)]


def test_a_bare_xml_and_a_zip_with_one_both_import(tmp_path: Path) -> None:
    content = (GOLDEN / "annotations.xml").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("task/annotations.xml", content)
        archive.writestr("images/img0.jpg", b"not parsed")
    zipped = import_cvat(
        samples.write(tmp_path, "a.zip", buffer.getvalue()), samples.labels(), samples.frames()
    )
    bare = import_cvat(GOLDEN / "annotations.xml", samples.labels(), samples.frames())
    assert zipped == bare


def test_frames_match_by_name_without_extension_then_by_id(tmp_path: Path) -> None:
    document = b"""<annotations><version>1.1</version>
      <image id="9" name="dir/img1.jpg" width="100" height="80">
        <tag label="scene"/></image>
      <image id="3" name="unknown.png" width="100" height="80"><tag label="scene"/></image>
    </annotations>"""
    imported = import_cvat(
        samples.write(tmp_path, "a.xml", document), samples.labels(), samples.frames()
    )
    assert [t.frame for t in imported.tags] == [1, 3]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            b'<annotations><image id="0" name="img0.jpg"><box label="truck" xtl="1" ytl="1" '
            b'xbr="2" ybr="2"/></image></annotations>',
            "'truck'",
        ),
        (
            b'<annotations><image id="0" name="img0.jpg"><box label="car" xtl="abc" ytl="1" '
            b'xbr="2" ybr="2"/></image></annotations>',
            "xtl='abc' is not a number",
        ),
        (
            b'<annotations><image id="0" name="img0.jpg"><box label="car" xtl="nan" ytl="1" '
            b'xbr="2" ybr="2"/></image></annotations>',
            "not a finite number",
        ),
        (
            b'<annotations><image id="0" name="img0.jpg"><polygon label="car" '
            b'points="1,2;x,4;5,6"/></image></annotations>',
            "'x' is not a number",
        ),
        (
            b'<annotations><image id="0" name="img0.jpg"><mask label="car" rle="1, 2" left="0" '
            b'top="0" width="2" height="2"/></image></annotations>',
            "covers 3 pixels",
        ),
        (
            b'<annotations><image id="0" name="img0.jpg"><box label="car" xtl="1" ytl="1" '
            b'xbr="2" ybr="2"><attribute name="model">zzz</attribute></box></image>'
            b"</annotations>",
            "'zzz' is not one of",
        ),
        (
            b'<annotations><image id="0" name="img0.jpg"><skeleton label="body">'
            b'<points label="tail" points="1,1"/></skeleton></image></annotations>',
            "'tail'",
        ),
        (b'<annotations><image id="77" name="nowhere.jpg"/></annotations>', "'nowhere.jpg'"),
        (
            b'<annotations><track id="0" label="car"><box frame="99" xtl="1" ytl="1" xbr="2" '
            b'ybr="2"/></track></annotations>',
            "frame 99",
        ),
        (
            b'<annotations><image id="0" name="img0.jpg"><mask label="car" rle="0, 4" '
            b'left="99" top="0" width="2" height="2"/></image></annotations>',
            "reaches past the frame",
        ),
        (b"<annotations><image", "malformed"),
        (b"<other/>", "root is <other>"),
        (b"", "malformed"),
    ],
)
def test_bad_documents_are_refused(tmp_path: Path, document: bytes, message: str) -> None:
    path = samples.write(tmp_path, "bad.xml", document)
    with pytest.raises(FormatError, match=message.replace("(", r"\(")):
        import_cvat(path, samples.labels(), samples.frames())


def test_unknown_attributes_are_dropped_as_cvat_does(tmp_path: Path) -> None:
    document = (
        b'<annotations><image id="0" name="img0.jpg"><box label="car" xtl="1" ytl="1" xbr="2" '
        b'ybr="2"><attribute name="colour">red</attribute></box></image></annotations>'
    )
    imported = import_cvat(
        samples.write(tmp_path, "a.xml", document), samples.labels(), samples.frames()
    )
    assert imported.shapes[0].attributes == []


def test_a_track_without_keyframe_flags_keeps_all_its_frames(tmp_path: Path) -> None:
    document = (
        b'<annotations><track id="0" label="person"><points frame="1" points="1,1"/>'
        b'<points frame="3" points="2,2" outside="1"/></track></annotations>'
    )
    imported = import_cvat(
        samples.write(tmp_path, "a.xml", document), samples.labels(), samples.frames()
    )
    assert imported.tracks[0].shapes == [
        TrackedShape("points", 1, [1.0, 1.0]),
        TrackedShape("points", 3, [2.0, 2.0], outside=True),
    ]


def test_text_xml_cannot_hold_is_dropped_on_export(tmp_path: Path) -> None:
    shape = Shape(
        "rectangle",
        samples.CAR,
        0,
        [1.0, 1.0, 2.0, 2.0],
        attributes=samples.car_attributes("a", "1", "false", "bell\x07 <&> ok"),
    )
    archive, _ = samples.export_to_bytes(
        export_images, samples.dataset(LabeledData(shapes=[shape]))
    )
    imported = _import(tmp_path, archive)
    assert imported.shapes[0].attributes[-1].value == "bell <&> ok"


def test_a_cvat_video_export_with_start_frame_and_step_imports(tmp_path: Path) -> None:
    path = GOLDEN / "video_from_cvat.xml"
    imported = import_cvat(path, samples.labels(), samples.numbered_frames())
    assert imported.shapes == [] and imported.tags == []
    box, skeleton, polygon, mask = imported.tracks
    assert (box.label_id, box.group, box.frame, box.source) == (samples.CAR, 3, 0, "file")
    assert box.attributes == [samples.AttributeValue(samples.MODEL, "b")]
    assert [(s.frame, s.outside, s.occluded, s.rotation, s.z_order) for s in box.shapes] == [
        (0, False, False, 0.0, 1),
        (2, True, True, 10.0, 1),
        (3, False, False, 0.0, 1),
    ]
    assert [s.attributes for s in box.shapes] == [
        [samples.AttributeValue(samples.SPEED, "10")],
        [samples.AttributeValue(samples.SPEED, "20")],
        [samples.AttributeValue(samples.SPEED, "30")],
    ]
    assert [s.frame for s in skeleton.shapes] == [1, 3]
    head, hand = skeleton.elements
    assert head.attributes == [samples.AttributeValue(samples.LOOK, "right")]
    assert [(s.frame, s.outside, s.occluded) for s in head.shapes] == [
        (1, False, True),
        (3, True, False),
    ]
    assert [(s.frame, s.outside) for s in hand.shapes] == [(1, False), (2, True)]
    assert [(s.frame, s.outside) for s in polygon.shapes] == [(3, False), (4, True)]
    assert [s.points for s in mask.shapes] == [samples.mask_points(), samples.mask_points()]


def test_video_round_trip_numbers_frames_as_cvat_does(tmp_path: Path) -> None:
    original = LabeledData(tracks=[samples.box_track(), samples.skeleton_track()])
    data = samples.dataset(original)
    data.frames = samples.numbered_frames()
    archive, _ = samples.export_to_bytes(export_video, data)
    root = _xml(archive)
    assert [b.get("frame") for b in root.find("track").findall("box")] == ["10", "12", "14", "16"]
    assert (root.findtext("meta/task/start_frame"), root.findtext("meta/task/stop_frame")) == (
        "10",
        "18",
    )
    path = samples.write(tmp_path, "upload.zip", archive)
    imported = import_cvat(path, samples.labels(), samples.numbered_frames())
    assert samples.normalized(imported) == samples.normalized(original)
    with pytest.raises(FormatError, match="frame 10 is not a frame"):
        import_cvat(path, samples.labels(), samples.frames())


def test_images_are_numbered_as_cvat_does(tmp_path: Path) -> None:
    data = samples.dataset(LabeledData(tags=samples.tags()))
    data.frames = samples.numbered_frames()
    root = _xml(samples.export_to_bytes(export_images, data)[0])
    assert [i.get("id") for i in root.findall("image")] == ["10", "12", "14", "16", "18"]
    document = b'<annotations><image id="14" name="elsewhere.jpg"><tag label="scene"/></image></annotations>'
    path = samples.write(tmp_path, "a.xml", document)
    assert [
        t.frame for t in import_cvat(path, samples.labels(), samples.numbered_frames()).tags
    ] == [2]


# The reader takes a document's parser events first and reads it again element by element
# when those are refused; both ways must give the same objects.

_ODD_VALUES = (
    b"<annotations><version>1.1</version><meta><task><labels><label><name>car</name>"
    b"<attributes><attribute><name>model</name></attribute></attributes></label></labels>"
    b'</task></meta><image id="0" name="img0.jpg">'
    b'<box label="car" xtl="+1" ytl=".5" xbr="1e2" ybr=" 3 " occluded="true" z_order=" 2">'
    b'<attribute name="model">b</attribute><attribute name="model">a</attribute>'
    b'<attribute name="colour">red</attribute><attribute>x</attribute>'
    b'<attribute name="note">a &amp; <![CDATA[<b>]]><!-- gone -->c</attribute>'
    b'<attribute name="speed"> 7 </attribute><attribute name="parked">1</attribute></box>'
    b'<polygon label="person" points="-0,1;2,-0.0;1_0,3" group_id=" 4"/>'
    b'<polyline label="person" points=" 1 , 2 ;3,4" rotation="0"/>'
    b'<polyline label="person" points="-0,1;2,-0.0"/>'
    b'<box label="car" xtl="-0" ytl="0" xbr="2" ybr="2e0"/>'
    b'<box label="car" xtl="1" ytl="1" xbr="2" ybr="2" occluded="False" rotation="1e1"/>'
    b'<unknown label="car"><box/></unknown>'
    b'<tag label="scene" group_id="3"><attribute name="weather">sun</attribute></tag>'
    b'<tag label="scene"/></image>'
    b'<image id="1" name="whatever"><points label="person" points="0,0"/></image>'
    b"</annotations>"
)


@pytest.mark.parametrize(
    ("document", "frames"),
    [
        ((GOLDEN / "annotations.xml").read_bytes(), samples.frames()),
        ((GOLDEN / "video.xml").read_bytes(), samples.frames()),
        ((GOLDEN / "video_from_cvat.xml").read_bytes(), samples.numbered_frames()),
        (_ODD_VALUES, samples.frames()),
    ],
    ids=["golden images", "golden video", "video from CVAT", "odd values"],
)
def test_parser_events_and_elements_read_the_same(document: bytes, frames: list) -> None:
    reader = cvat_import._Reader(samples.labels(), frames)
    feed_events(document, "annotations", cvat_import._Events(reader))
    by_events = reader.data
    assert by_events.shapes or by_events.tracks
    assert msgspec.json.encode(by_events) == msgspec.json.encode(reader.read_elements(document))


def test_exports_read_the_same_both_ways() -> None:
    original = LabeledData(
        shapes=samples.every_shape(),
        tags=samples.tags(),
        tracks=[samples.box_track(), samples.polygon_track(), samples.skeleton_track()],
    )
    for exporter in (export_images, export_video):
        archive, _ = samples.export_to_bytes(exporter, samples.dataset(original))
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            document = opened.read("annotations.xml")
        reader = cvat_import._Reader(samples.labels(), samples.frames())
        feed_events(document, "annotations", cvat_import._Events(reader))
        by_events = reader.data
        assert by_events == reader.read_elements(document)


@pytest.mark.parametrize(
    "inner",
    [
        b'<box label="car" xtl="1" ytl="1" xbr="2" ybr="2"><extra/></box>',
        b'<tag label="scene"><attribute name="weather">sun<b>rain</b></attribute></tag>',
    ],
)
def test_markup_cvat_never_writes_is_read_element_by_element(tmp_path: Path, inner: bytes) -> None:
    document = b'<annotations><image id="0" name="img0.jpg">' + inner + b"</image></annotations>"
    reader = cvat_import._Reader(samples.labels(), samples.frames())
    with pytest.raises(cvat_import._Unusual):
        feed_events(document, "annotations", cvat_import._Events(reader))
    imported = import_cvat(
        samples.write(tmp_path, "a.xml", document), samples.labels(), samples.frames()
    )
    assert imported == reader.read_elements(document)
