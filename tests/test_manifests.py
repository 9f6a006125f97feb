"""CVAT's dataset manifests: read with the data, written for every task's data."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.images import write_images
from tests.live_server import LiveServer
from tests.task_setup import attach_files, upload_task
from tests.videos import key_frames, write_video
from workers.images import MediaError
from workers.media.manifest import (
    Manifest,
    image_items,
    parse_manifest,
    read_index,
    write_manifest,
)

LABELS = [{"name": "car"}]


def manifest_lines(*items: dict[str, object]) -> bytes:
    header = [{"version": "1.1"}, {"type": "images"}]
    return "".join(json.dumps(line) + "\n" for line in [*header, *items]).encode()


def test_a_written_manifest_reads_back_and_its_index_points_at_each_line(tmp_path: Path) -> None:
    manifest = Manifest(
        type="images", images=image_items([("a/b.jpg", 4, 3), ("c.png", 5, 6), ("noext", 1, 1)])
    )
    write_manifest(tmp_path, manifest)
    raw = (tmp_path / "manifest.jsonl").read_bytes()
    lines = raw.decode().splitlines()
    assert lines[:2] == ['{"version":"1.1"}', '{"type":"images"}']
    assert json.loads(lines[2]) == {"name": "a/b", "extension": ".jpg", "width": 4, "height": 3}
    index = read_index(tmp_path)
    assert sorted(index) == [0, 1, 2]
    for number, offset in index.items():
        assert raw[offset:].split(b"\n", 1)[0].decode() == lines[2 + number]
    assert parse_manifest(raw).file_names() == ["a/b.jpg", "c.png", "noext"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "version line"),
        (b'{"version":"9"}\n{"type":"images"}\n', "version"),
        (b'{"version":"1.1"}\n{"type":"audio"}\n', "type"),
        (b'{"version":"1.1"}\nnot json\n', "line 2"),
        (manifest_lines({"extension": ".png"}), "line 3"),
        (manifest_lines({"name": "../../etc/passwd", "extension": ""}), "usable"),
        (manifest_lines({"name": "/abs", "extension": ".png"}), "usable"),
        (manifest_lines({"name": "a", "extension": ".png", "width": "wide"}), "line 3"),
    ],
)
def test_bad_manifests_are_refused_naming_the_line(raw: bytes, reason: str) -> None:
    with pytest.raises(MediaError, match=reason):
        parse_manifest(raw)


def media_of(server: LiveServer, task_id: int) -> Path:
    assert server.runtime is not None
    return server.runtime.media_dir / "tasks" / str(task_id)


def test_uploaded_images_get_a_manifest(
    server: LiveServer, admin: httpx.Client, tmp_path: Path
) -> None:
    task = upload_task(admin, tmp_path, ["x.png", "y.jpg"], {"name": "m", "labels": LABELS})
    written = parse_manifest((media_of(server, task["id"]) / "manifest.jsonl").read_bytes())
    assert [(i.file_name, i.width, i.height) for i in written.images] == [
        ("x.png", 64, 48),
        ("y.jpg", 64, 48),
    ]


def test_a_manifest_uploaded_with_the_images_sets_the_predefined_order(
    admin: httpx.Client, tmp_path: Path
) -> None:
    paths = write_images(tmp_path, ["a.png", "b.png", "c.png"])
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(
        manifest_lines(
            *(
                {"name": name, "extension": ".png", "width": 64, "height": 48}
                for name in ("c", "a", "b")
            )
        )
    )
    task_id, status = attach_files(
        admin,
        {"name": "ordered", "labels": LABELS},
        [*paths, manifest],
        sorting_method="predefined",
    )
    assert status["status"] == "finished", status
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert [frame["name"] for frame in meta["frames"]] == ["c.png", "a.png", "b.png"]

    other = tmp_path / "second.jsonl"
    other.write_bytes(manifest.read_bytes())
    task_id, status = attach_files(
        admin, {"name": "two manifests", "labels": LABELS}, [*paths, manifest, other]
    )
    assert status["status"] == "failed" and "one manifest" in status["message"]
    assert admin.get(f"/api/tasks/{task_id}").json()["data"] is None

    short = tmp_path / "short" / "manifest.jsonl"
    short.parent.mkdir()
    short.write_bytes(manifest_lines({"name": "a", "extension": ".png"}))
    _, status = attach_files(admin, {"name": "missing", "labels": LABELS}, [*paths, short])
    assert status["status"] == "failed" and "missing from the manifest" in status["message"]


def test_an_uploaded_video_gets_a_video_manifest(
    server: LiveServer, admin: httpx.Client, tmp_path: Path
) -> None:
    video = tmp_path / "clip.mp4"
    write_video(video, frames=60, keyint=20)
    task_id, status = attach_files(admin, {"name": "video", "labels": LABELS}, [video])
    assert status["status"] == "finished", status
    lines = (media_of(server, task_id) / "manifest.jsonl").read_text().splitlines()
    assert json.loads(lines[1]) == {"type": "video"}
    assert json.loads(lines[2]) == {
        "properties": {"name": "clip.mp4", "resolution": [64, 48], "length": 60}
    }
    assert [json.loads(line)["number"] for line in lines[3:]] == key_frames(video)
