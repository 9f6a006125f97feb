"""The official cvat-cli and cvat-sdk (2.80, from PyPI) against a live Palimpsest, unchanged."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from cvat_sdk import make_client, models
from cvat_sdk.core.proxies.tasks import ResourceType
from PIL import Image

from tests.images import write_images
from tests.live_server import ADMIN_PASSWORD, LiveServer

CLI = str(Path(sys.executable).parent / "cvat-cli")


def run_cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "--server-host", server.url, "--auth", f"admin:{ADMIN_PASSWORD}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_creates_a_task_from_local_images_and_lists_it(
    server: LiveServer, tmp_path: Path
) -> None:
    images = write_images(tmp_path, ["img1.jpg", "img2.jpg"])
    labels = json.dumps([{"name": "car"}, {"name": "person"}])
    created = run_cli(
        server,
        "task", "create", "demo", "local", *map(str, images),
        "--labels", labels, "--completion_verification_period", "0.1",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    task_id = int(created.stdout.strip().splitlines()[-1])

    listed = run_cli(server, "task", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    tasks = {task["id"]: task for task in json.loads(listed.stdout)}
    assert tasks[task_id]["name"] == "demo"
    assert tasks[task_id]["size"] == 2
    assert "not compatible" not in listed.stderr

    frames_dir = tmp_path / "frames"
    frames = run_cli(server, "task", "frames", str(task_id), "0", "1", "--outdir", str(frames_dir))
    assert frames.returncode == 0, frames.stderr
    assert len(list(frames_dir.iterdir())) == 2


def test_sdk_project_with_labels_task_jobs_frames_and_meta(
    server: LiveServer, tmp_path: Path
) -> None:
    images = write_images(tmp_path, [f"frame_{i}.png" for i in (10, 2, 1, 3, 20)], size=(80, 60))
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as c:
        c.config.status_check_period = 0.1
        project = c.projects.create(
            models.ProjectWriteRequest(
                name="streets",
                labels=[
                    models.PatchedLabelRequest(
                        name="car",
                        attributes=[
                            models.AttributeRequest(
                                name="model",
                                mutable=False,
                                input_type="select",
                                values=["sedan", "truck"],
                                default_value="truck",
                            ),
                            models.AttributeRequest(
                                name="speed",
                                mutable=True,
                                input_type="number",
                                values=["0", "200", "1"],
                            ),
                        ],
                    ),
                    models.PatchedLabelRequest(name="sign", type="rectangle"),
                ],
            )
        )
        task = c.tasks.create_from_data(
            spec=models.TaskWriteRequest(name="street task", project_id=project.id, segment_size=2),
            resource_type=ResourceType.LOCAL,
            resources=[str(p) for p in images],
            data_params={"sorting_method": "natural", "image_quality": 50},
        )
        assert task.size == 5
        assert task.project_id == project.id
        jobs = task.get_jobs()
        assert sorted((j.start_frame, j.stop_frame) for j in jobs) == [(0, 1), (2, 3), (4, 4)]
        meta = task.get_meta()
        assert [f.name for f in meta.frames] == [
            "frame_1.png", "frame_2.png", "frame_3.png", "frame_10.png", "frame_20.png",
        ]  # fmt: skip
        assert (meta.frames[0].width, meta.frames[0].height) == (80, 60)
        labels = task.get_labels()
        assert sorted(label.name for label in labels) == ["car", "sign"]
        car = next(label for label in labels if label.name == "car")
        assert {a.name: a.default_value for a in car.attributes} == {"model": "truck", "speed": "0"}

        compressed = Image.open(task.get_frame(3, quality="compressed"))
        original = Image.open(task.get_frame(3, quality="original"))
        assert compressed.format == "JPEG" and original.format == "PNG"
        assert compressed.size == original.size == (80, 60)

        job = sorted(jobs, key=lambda j: j.start_frame)[1]
        job_frame = Image.open(job.get_frame(2, quality="compressed"))
        assert job_frame.size == (80, 60)
        assert [f.name for f in job.get_meta().frames] == ["frame_3.png", "frame_10.png"]
        assert Image.open(io.BytesIO(task.get_preview().read())).size[0] <= 256

        fetched = c.projects.retrieve(project.id)
        assert fetched.tasks.count == 1
        assert [t.id for t in fetched.get_tasks()] == [task.id]


def test_sdk_reports_a_failed_ingest(server: LiveServer, tmp_path: Path) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not an image")
    from cvat_sdk.core.exceptions import BackgroundRequestException

    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as c:
        c.config.status_check_period = 0.1
        with pytest.raises(BackgroundRequestException, match="notes.jpg"):
            c.tasks.create_from_data(
                spec=models.TaskWriteRequest(name="bad", labels=[{"name": "x"}]),
                resource_type=ResourceType.LOCAL,
                resources=[str(bad)],
            )


def test_sdk_annotations_on_tasks_and_jobs(server: LiveServer, tmp_path: Path) -> None:
    from cvat_sdk.core.proxies.annotations import AnnotationUpdateAction

    images = write_images(tmp_path, [f"{i}.png" for i in range(4)])
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as c:
        c.config.status_check_period = 0.1
        task = c.tasks.create_from_data(
            spec=models.TaskWriteRequest(name="sdk anns", labels=[{"name": "car"}], segment_size=2),
            resource_type=ResourceType.LOCAL,
            resources=[str(p) for p in images],
        )
        car = task.get_labels()[0].id

        def box(frame: int, x: float) -> models.LabeledShapeRequest:
            return models.LabeledShapeRequest(
                type="rectangle", label_id=car, frame=frame, points=[x, x, x + 10.5, x + 10.25]
            )

        task.update_annotations(
            models.PatchedLabeledDataRequest(shapes=[box(0, 1), box(3, 2)]),
            action=AnnotationUpdateAction.CREATE,
        )
        shapes = task.get_annotations().shapes
        assert sorted((s.frame, s.points) for s in shapes) == [
            (0, [1.0, 1.0, 11.5, 11.25]),
            (3, [2.0, 2.0, 12.5, 12.25]),
        ]
        jobs = sorted(task.get_jobs(), key=lambda j: j.start_frame)
        second = jobs[1]
        assert [s.frame for s in second.get_annotations().shapes] == [3]
        second.update_annotations(
            models.PatchedLabeledDataRequest(
                tracks=[
                    models.LabeledTrackRequest(
                        label_id=car,
                        frame=2,
                        shapes=[
                            models.TrackedShapeRequest(
                                type="rectangle", frame=2, points=[0, 0, 4, 4]
                            ),
                            models.TrackedShapeRequest(
                                type="rectangle", frame=3, points=[2, 2, 6, 6], outside=True
                            ),
                        ],
                    )
                ]
            ),
        )
        job_anns = second.get_annotations()
        assert len(job_anns.tracks) == 1 and len(job_anns.tracks[0].shapes) == 2
        first_shape = next(s for s in shapes if s.frame == 0)
        task.remove_annotations(ids=[first_shape.id])
        assert [s.frame for s in task.get_annotations().shapes] == [3]
        second.remove_annotations()
        assert second.get_annotations().tracks == []
        task.set_annotations(models.LabeledDataRequest(shapes=[box(1, 5)]))
        assert [s.frame for s in task.get_annotations().shapes] == [1]
        assert jobs[0].get_annotations().shapes[0].points == [5.0, 5.0, 15.5, 15.25]


def test_sdk_sends_big_files_through_tus(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files over the SDK's request size go through TUS in chunks; shrink both to test it."""
    from cvat_sdk.core import uploading

    monkeypatch.setattr(uploading, "TUS_CHUNK_SIZE", 4096)
    monkeypatch.setattr(uploading.DataUploader.__init__, "__defaults__", (2048,))
    rng = np.random.default_rng(7)
    images = []
    for name in ("big_a.png", "big_b.png", "small.png"):
        path = tmp_path / name
        cv2.imwrite(str(path), rng.integers(0, 255, (150, 200, 3), dtype=np.uint8))
        images.append(path)
    assert all(p.stat().st_size > 4 * 4096 for p in images)
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as c:
        c.config.status_check_period = 0.1
        task = c.tasks.create_from_data(
            spec=models.TaskWriteRequest(name="tus", labels=[{"name": "car"}]),
            resource_type=ResourceType.LOCAL,
            resources=[str(p) for p in images],
        )
        assert task.size == 3
        assert sorted(f.name for f in task.get_meta().frames) == [
            "big_a.png",
            "big_b.png",
            "small.png",
        ]
        original = Image.open(task.get_frame(0, quality="original"))
        assert original.size == (200, 150)
