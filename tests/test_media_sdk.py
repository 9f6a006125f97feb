"""cvat-sdk 2.80 makes a task from a local video and reads its frames, unchanged."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from cvat_sdk import make_client, models
from cvat_sdk.core.proxies.tasks import ResourceType
from PIL import Image

from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.videos import write_video


def test_sdk_creates_a_task_from_a_local_video(server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "drive.mp4"
    reference = write_video(path, frames=60, keyint=20)
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as client:
        client.config.status_check_period = 0.1
        task = client.tasks.create_from_data(
            spec=models.TaskWriteRequest(name="drive", labels=[{"name": "car"}], segment_size=30),
            resource_type=ResourceType.LOCAL,
            resources=[str(path)],
            data_params={"image_quality": 95, "frame_step": 2},
        )
        assert task.size == 30
        assert task.mode == "interpolation"
        assert task.data_original_chunk_type == "video"
        meta = task.get_meta()
        assert [(f.name, f.width, f.height) for f in meta.frames] == [("drive.mp4", 64, 48)]
        assert meta.frame_filter == "step=2"
        assert [(j.start_frame, j.stop_frame) for j in task.get_jobs()] == [(0, 29)]
        original = np.asarray(Image.open(task.get_frame(7, quality="original")).convert("RGB"))
        assert np.array_equal(original[:, :, ::-1], reference[14])
        compressed = np.asarray(Image.open(task.get_frame(7, quality="compressed")).convert("RGB"))
        error = np.abs(compressed[:, :, ::-1].astype(int) - reference[14].astype(int)).mean()
        assert error < 6


def test_video_task_exports_with_its_frames(server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "lane.mp4"
    reference = write_video(path, frames=30, keyint=10)
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as client:
        client.config.status_check_period = 0.1
        task = client.tasks.create_from_data(
            spec=models.TaskWriteRequest(name="lane", labels=[{"name": "car"}]),
            resource_type=ResourceType.LOCAL,
            resources=[str(path)],
            data_params={"start_frame": 5, "stop_frame": 24},
        )
        label = task.get_labels()[0].id
        task.update_annotations(
            models.PatchedLabeledDataRequest(
                shapes=[
                    models.LabeledShapeRequest(
                        type="rectangle", label_id=label, frame=12, points=[1, 2, 30, 40]
                    )
                ]
            )
        )
        out = tmp_path / "export.zip"
        task.export_dataset("CVAT for images 1.1", out, include_images=True)
    with zipfile.ZipFile(out) as archive:
        images = sorted(n for n in archive.namelist() if n.startswith("images/"))
        assert images == [f"images/frame_{n:06d}.png" for n in range(5, 25)]
        frame = np.asarray(Image.open(io.BytesIO(archive.read("images/frame_000017.png"))))
        assert np.array_equal(frame[:, :, ::-1], reference[17])
        xml = archive.read("annotations.xml").decode()
    assert 'name="frame_000017"' in xml
    assert 'xtl="1.00" ytl="2.00"' in xml or 'xtl="1" ytl="2"' in xml
