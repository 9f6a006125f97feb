"""Archives of images as task data, and hostile uploads refused before anything is made."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.images import write_images
from tests.live_server import LiveServer
from tests.task_setup import attach_files, wait_for_request
from tests.videos import write_video

LABELS = [{"name": "car"}]
TASK = {"name": "archive", "labels": LABELS}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def pictures(tmp_path: Path) -> dict[str, bytes]:
    paths = write_images(tmp_path / "src", ["b.png", "a.jpg", "c.png"])
    return {f"cams/{path.name}": path.read_bytes() for path in paths}


def _finished(admin: httpx.Client, files: list[Path], **params: object) -> int:
    task_id, status = attach_files(admin, TASK, files, **params)
    assert status["status"] == "finished", status
    return task_id


def _refused(admin: httpx.Client, files: list[Path], reason: str, **params: object) -> int:
    task_id, status = attach_files(admin, TASK, files, **params)
    assert status["status"] == "failed"
    assert reason in str(status["message"]), status["message"]
    assert admin.get(f"/api/tasks/{task_id}").json().get("data_chunk_size") is None
    assert admin.get(f"/api/tasks/{task_id}/data/meta").status_code == 404
    return task_id


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar"])
def test_image_archive_becomes_frames(
    admin: httpx.Client, tmp_path: Path, pictures: dict[str, bytes], kind: str
) -> None:
    if kind == "zip":
        archive = _zip(tmp_path / "pictures.zip", pictures)
    else:
        archive = _tar(tmp_path / f"pictures.{kind}", pictures, "w:gz" if kind == "tar.gz" else "w")
    task_id = _finished(admin, [archive])
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert [frame["name"] for frame in meta["frames"]] == ["cams/a.jpg", "cams/b.png", "cams/c.png"]
    assert meta["size"] == 3
    for number, name in enumerate(sorted(pictures)):
        original = admin.get(
            f"/api/tasks/{task_id}/data",
            params={"type": "frame", "number": number, "quality": "original"},
        )
        assert original.content == pictures[name]
    chunk = admin.get(f"/api/tasks/{task_id}/data", params={"type": "chunk", "number": 0})
    with zipfile.ZipFile(io.BytesIO(chunk.content)) as opened:
        assert [i.filename for i in opened.infolist()] == [
            "000000.jpeg",
            "000001.jpeg",
            "000002.jpeg",
        ]


def test_archive_next_to_images_keeps_both(
    admin: httpx.Client, tmp_path: Path, pictures: dict[str, bytes]
) -> None:
    archive = _zip(tmp_path / "more.zip", pictures)
    (loose,) = write_images(tmp_path / "loose", ["z.png"])
    task_id = _finished(admin, [loose, archive], frame_filter="step=2")
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert [frame["name"] for frame in meta["frames"]] == ["cams/a.jpg", "cams/c.png"]


def test_zip_slip_is_refused(
    admin: httpx.Client, server: LiveServer, tmp_path: Path, pictures: dict[str, bytes]
) -> None:
    evil = _zip(tmp_path / "evil.zip", {**pictures, "../../escaped.png": b"x" * 10})
    _refused(admin, [evil], "zip slip")
    absolute = _tar(tmp_path / "abs.tar.gz", {**pictures, "/tmp/escaped.png": b"x"})
    _refused(admin, [absolute], "zip slip")
    assert not list(server.data_dir.rglob("escaped.png"))
    assert not Path("/tmp/escaped.png").exists()


def test_links_in_a_tar_are_refused(admin: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "links.tar"
    with tarfile.open(path, "w") as archive:
        link = tarfile.TarInfo("frame.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    _refused(admin, [path], "link or special file")


def test_archive_bomb_is_refused(admin: httpx.Client, tmp_path: Path) -> None:
    bomb = _zip(tmp_path / "bomb.zip", {"huge.png": bytes(64 << 20)})
    assert bomb.stat().st_size < 1 << 20
    _refused(admin, [bomb], "archive bomb")
    tar_bomb = _tar(tmp_path / "bomb.tar.gz", {"huge.png": bytes(64 << 20)})
    _refused(admin, [tar_bomb], "archive bomb")


def test_non_media_is_refused(
    admin: httpx.Client, tmp_path: Path, pictures: dict[str, bytes]
) -> None:
    mixed = _zip(tmp_path / "mixed.zip", {**pictures, "notes/readme.txt": b"hello"})
    _refused(admin, [mixed], "'notes/readme.txt' is not an image or a video")
    text = tmp_path / "notes.txt"
    text.write_text("not media")
    _refused(admin, [text], "notes.txt is not a supported image, video or archive")
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK but not really a zip")
    _refused(admin, [fake], "fake.zip is not a ZIP or tar archive")


def test_truncated_video_is_refused(admin: httpx.Client, tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    write_video(whole)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _refused(admin, [cut], "cut.mp4 is not a readable video")
    # with the index in front, the frames are listed but the last ones are missing
    front = tmp_path / "front.mp4"
    write_video(front, faststart=True)
    cut_front = tmp_path / "cut_front.mp4"
    cut_front.write_bytes(front.read_bytes()[: front.stat().st_size * 9 // 10])
    _refused(admin, [cut_front], "cut_front.mp4 is damaged")  # found making every chunk
    _refused(admin, [cut_front], "cut_front.mp4 is damaged", use_cache="true")  # by the index
    not_video = tmp_path / "text.mp4"
    not_video.write_text("this is not a video")
    _refused(admin, [not_video], "text.mp4 is not a readable video")


def test_video_with_other_files_is_refused(admin: httpx.Client, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_video(clip, frames=10)
    (image,) = write_images(tmp_path, ["extra.png"])
    _refused(admin, [clip, image], "either images or one video")


def test_refused_upload_leaves_the_task_open_for_good_data(
    admin: httpx.Client, tmp_path: Path, pictures: dict[str, bytes]
) -> None:
    evil = _zip(tmp_path / "evil.zip", {**pictures, "../x.png": b"x"})
    task_id = _refused(admin, [evil], "zip slip")
    good = _zip(tmp_path / "good.zip", pictures)
    response = admin.post(
        f"/api/tasks/{task_id}/data",
        files=[("client_files[0]", (good.name, good.read_bytes(), "application/zip"))],
        data={"image_quality": "70"},
    )
    assert response.status_code == 202
    assert wait_for_request(admin, response.json()["rq_id"])["status"] == "finished"
    assert admin.get(f"/api/tasks/{task_id}").json()["size"] == 3


def test_context_images_from_related_images_folders(admin: httpx.Client, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "src", ["a.jpg", "b.png", "c.png", "l.png", "r.jpg", "x.png"])
    data = {path.name: path.read_bytes() for path in paths}
    archive = _zip(
        tmp_path / "scene.zip",
        {
            "a.jpg": data["a.jpg"],
            "b.png": data["b.png"],
            "related_images/a_jpg/left.png": data["l.png"],
            "related_images/a_jpg/right.jpg": data["r.jpg"],
            "sub/c.png": data["c.png"],
            "sub/related_images/c_png/ctx.png": data["x.png"],
        },
    )
    task_id = _finished(admin, [archive])
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert [(f["name"], f["related_files"], f["has_related_context"]) for f in meta["frames"]] == [
        ("a.jpg", 2, True),
        ("b.png", 0, False),
        ("sub/c.png", 1, True),
    ]

    def context(number: int) -> httpx.Response:
        return admin.get(
            f"/api/tasks/{task_id}/data", params={"type": "context_image", "number": number}
        )

    with zipfile.ZipFile(io.BytesIO(context(0).content)) as opened:
        assert [opened.read(i) for i in opened.infolist()] == [data["l.png"], data["r.jpg"]]
    with zipfile.ZipFile(io.BytesIO(context(2).content)) as opened:
        assert [opened.read(i) for i in opened.infolist()] == [data["x.png"]]
    assert context(1).status_code == 404
    assert context(7).status_code == 400


def test_context_images_without_their_frame_or_too_many_are_refused(
    admin: httpx.Client, tmp_path: Path
) -> None:
    (image,) = write_images(tmp_path / "src", ["a.png"])
    png = image.read_bytes()
    orphan = _zip(tmp_path / "orphan.zip", {"a.png": png, "related_images/b_png/1.png": png})
    _refused(admin, [orphan], "related_images/b_png/ holds context images")
    crowded = _zip(
        tmp_path / "crowded.zip",
        {"a.png": png, **{f"related_images/a_png/{i}.png": png for i in range(13)}},
    )
    _refused(admin, [crowded], "a.png has 13 context images; at most 12")
