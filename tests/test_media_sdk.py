"""cvat-sdk 2.80 makes a task from a local video and reads its frames, unchanged."""

from __future__ import annotations

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
