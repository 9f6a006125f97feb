"""Video tasks end to end: upload, meta, frames, chunks in both qualities, step/start/stop."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.live_server import LiveServer
from tests.task_setup import attach_files, wait_for_request
from tests.videos import decode_all, key_frames, write_video

LABELS = [{"name": "car"}]
JPEG_TOLERANCE = 6.0  # mean absolute error of a JPEG/H.264 round trip of these frames


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path_factory.mktemp("video") / "street.mp4"
    frames = write_video(path, width=64, height=48, frames=90, keyint=25)
    assert key_frames(path) == [0, 25, 50, 75]
    return path, frames


def _image(body: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _video_task(admin: httpx.Client, video: Path, **params: object) -> int:
    task_id, status = attach_files(admin, {"name": "video", "labels": LABELS}, [video], **params)
    assert status["status"] == "finished", status
    return task_id


def _frame(admin: httpx.Client, task_id: int, number: int, quality: str) -> httpx.Response:
    response = admin.get(
        f"/api/tasks/{task_id}/data", params={"type": "frame", "number": number, "quality": quality}
    )
    assert response.status_code == 200, response.text
    return response


def test_video_task_meta_and_frames(admin: httpx.Client, video) -> None:
    path, reference = video
    task_id = _video_task(admin, path, use_cache="true", image_quality=90)
    task = admin.get(f"/api/tasks/{task_id}").json()
    assert task["size"] == 90
    assert task["mode"] == "interpolation"
    assert task["data_original_chunk_type"] == "video"
    assert task["data_compressed_chunk_type"] == "video"
    assert task["data_chunk_size"] == 36
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert meta["size"] == 90
    assert (meta["start_frame"], meta["stop_frame"]) == (0, 89)
    assert meta["frames"] == [
        {
            "name": "street.mp4",
            "width": 64,
            "height": 48,
            "related_files": 0,
            "has_related_context": False,
        }
    ]
    # around every key frame, in an order that makes the reader seek back and forth
    for number in (24, 25, 26, 0, 89, 74, 75, 49, 1, 2):
        original = _frame(admin, task_id, number, "original")
        assert original.headers["content-type"] == "image/png"
        assert np.array_equal(_image(original.content), reference[number]), number
        compressed = _frame(admin, task_id, number, "compressed")
        assert compressed.headers["content-type"] == "image/jpeg"
        assert _error(_image(compressed.content), reference[number]) < JPEG_TOLERANCE, number
    # a second read (from the cache) gives the same bytes
    first = _frame(admin, task_id, 26, "compressed").content
    assert _frame(admin, task_id, 26, "compressed").content == first
    preview = admin.get(f"/api/tasks/{task_id}/preview")
    assert preview.status_code == 200
    assert _image(preview.content).shape == (48, 64, 3)


def test_start_stop_and_step_select_frames(admin: httpx.Client, video) -> None:
    path, reference = video
    task_id = _video_task(
        admin, path, use_cache="true", start_frame=10, stop_frame=70, frame_filter="step=3"
    )
    kept = list(range(10, 71, 3))
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert meta["size"] == len(kept) == 21
    assert (meta["start_frame"], meta["stop_frame"], meta["frame_filter"]) == (10, 70, "step=3")
    for number in (0, 5, 13, 20):
        body = _frame(admin, task_id, number, "original").content
        assert np.array_equal(_image(body), reference[kept[number]]), number
    chunk = admin.get(
        f"/api/tasks/{task_id}/data", params={"type": "chunk", "number": 0, "quality": "original"}
    )
    frames = decode_all(chunk.content)
    assert len(frames) == 21
    for number in (0, 7, 20):
        assert _error(frames[number], reference[kept[number]]) < JPEG_TOLERANCE


@pytest.mark.parametrize("use_cache", ["true", "false"])
def test_video_chunks_hold_the_frames(admin: httpx.Client, video, use_cache: str) -> None:
    path, reference = video
    task_id = _video_task(admin, path, use_cache=use_cache, chunk_size=30, image_quality=80)
    for quality in ("compressed", "original"):
        for number in range(3):
            response = admin.get(
                f"/api/tasks/{task_id}/data",
                params={"type": "chunk", "number": number, "quality": quality},
            )
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "video/mp4"
            assert response.headers["x-checksum"]
            frames = decode_all(response.content)
            assert len(frames) == 30
            for offset, frame in enumerate(frames):
                expected = reference[number * 30 + offset]
                assert _error(frame, expected) < JPEG_TOLERANCE, (quality, number, offset)


def test_original_chunks_are_finer_than_low_quality_ones(admin: httpx.Client, video) -> None:
    path, reference = video
    task_id = _video_task(admin, path, use_cache="true", image_quality=5)

    def chunk_error(quality: str) -> float:
        body = admin.get(
            f"/api/tasks/{task_id}/data", params={"type": "chunk", "number": 0, "quality": quality}
        ).content
        return float(
            np.mean([_error(a, b) for a, b in zip(decode_all(body), reference[:36], strict=True)])
        )

    assert chunk_error("original") < chunk_error("compressed")
    low = _frame(admin, task_id, 3, "compressed").content
    assert len(low) < len(_frame(admin, task_id, 3, "original").content)


def test_zip_chunks_of_a_video_are_jpegs(admin: httpx.Client, video) -> None:
    path, reference = video
    task_id = _video_task(admin, path, use_zip_chunks="true", use_cache="false", chunk_size=40)
    task = admin.get(f"/api/tasks/{task_id}").json()
    assert task["data_compressed_chunk_type"] == "imageset"
    assert task["data_original_chunk_type"] == "video"
    response = admin.get(f"/api/tasks/{task_id}/data", params={"type": "chunk", "number": 2})
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = [info.filename for info in archive.infolist()]
        assert names == [f"{frame:06d}.jpeg" for frame in range(80, 90)]
        for frame, name in zip(range(80, 90), names, strict=True):
            assert _error(_image(archive.read(name)), reference[frame]) < JPEG_TOLERANCE


def test_job_chunks_and_frames_of_a_video(admin: httpx.Client, video) -> None:
    path, reference = video
    created = admin.post(
        "/api/tasks", json={"name": "segmented", "labels": LABELS, "segment_size": 40}
    )
    task_id = created.json()["id"]
    response = admin.post(
        f"/api/tasks/{task_id}/data",
        files=[("client_files[0]", (path.name, path.read_bytes(), "video/mp4"))],
        data={"image_quality": "90", "use_cache": "true", "chunk_size": "20"},
    )
    assert wait_for_request(admin, response.json()["rq_id"])["status"] == "finished"
    jobs = sorted(
        admin.get("/api/jobs", params={"task_id": task_id}).json()["results"],
        key=lambda job: job["start_frame"],
    )
    assert [(job["start_frame"], job["stop_frame"]) for job in jobs] == [
        (0, 39),
        (35, 74),
        (70, 89),
    ]
    second = jobs[1]
    chunk = admin.get(
        f"/api/jobs/{second['id']}/data",
        params={"type": "chunk", "index": 0, "quality": "original"},
    )
    frames = decode_all(chunk.content)
    assert len(frames) == 20
    assert _error(frames[0], reference[35]) < JPEG_TOLERANCE
    frame = admin.get(
        f"/api/jobs/{second['id']}/data",
        params={"type": "frame", "number": 50, "quality": "original"},
    )
    assert np.array_equal(_image(frame.content), reference[50])
    meta = admin.get(f"/api/jobs/{second['id']}/data/meta").json()
    assert (meta["start_frame"], meta["stop_frame"], meta["size"]) == (35, 74, 40)
    assert [entry["name"] for entry in meta["frames"]] == ["street.mp4"]


def test_deleting_a_video_task_drops_its_cached_media(
    admin: httpx.Client, server: LiveServer, video
) -> None:
    path, _ = video
    task_id = _video_task(admin, path, use_cache="true")
    cache = server.data_dir / "cache"
    before = set(cache.glob("*.bin"))
    for number in (3, 30, 60):
        _frame(admin, task_id, number, "compressed")
    made = set(cache.glob("*.bin")) - before
    assert len(made) == 3
    assert admin.delete(f"/api/tasks/{task_id}").status_code == 204
    assert not made & set(cache.glob("*.bin"))
    assert not (server.data_dir / "media" / "tasks" / str(task_id)).exists()
