"""Backups to and from a cloud storage (an S3 bucket served by moto), and lightweight
backups that take their media from the bucket again."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.images import write_images
from tests.live_server import free_port
from tests.task_setup import upload_task, wait_for_request
from tests.test_backups import FRAMES, annotate, backup, frame, job_annotations, restore
from tests.test_cloud_storages import KEY, SECRET, storage_body
from tests.test_dataset_formats_api import LABELS


@pytest.fixture(scope="module")
def bucket(admin: httpx.Client) -> Iterator[tuple[Any, int]]:
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="frames")
    body = storage_body(endpoint, manifests=[], prefix="backups/")
    created = admin.post("/api/cloudstorages", json=body)
    assert created.status_code == 201, created.text
    yield s3, created.json()["id"]
    moto.stop()


def test_backups_go_to_and_come_from_a_cloud_storage(
    admin: httpx.Client, bucket: tuple[Any, int], tmp_path: Path
) -> None:
    s3, storage_id = bucket
    task_id = upload_task(admin, tmp_path, FRAMES, {"name": "to a bucket", "labels": LABELS})["id"]
    annotate(admin, task_id)
    started = admin.post(
        f"/api/tasks/{task_id}/backup/export",
        params={"location": "cloud_storage", "cloud_storage_id": storage_id,
                "filename": "day1/task.zip"},
    )  # fmt: skip
    assert started.status_code == 202, started.text
    done = wait_for_request(admin, started.json()["rq_id"])
    assert done["status"] == "finished", done
    stored = s3.get_object(Bucket="frames", Key="backups/day1/task.zip")["Body"].read()
    assert "task.json" in zipfile.ZipFile(io.BytesIO(stored)).namelist()

    response = admin.post(
        "/api/tasks/backup/",
        params={"location": "cloud_storage", "cloud_storage_id": storage_id,
                "filename": "day1/task.zip"},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "finished", status
    assert job_annotations(admin, status["result_id"]) == job_annotations(admin, task_id)

    missing = admin.post(
        "/api/tasks/backup/",
        params={"location": "cloud_storage", "cloud_storage_id": storage_id,
                "filename": "day1/none.zip"},
    )  # fmt: skip
    assert missing.status_code == 400 and "filename" in missing.json()
    hostile = admin.post(
        "/api/tasks/backup/",
        params={"location": "cloud_storage", "cloud_storage_id": storage_id,
                "filename": "../up.zip"},
    )  # fmt: skip
    assert hostile.status_code == 400


def test_a_lightweight_backup_takes_the_media_from_its_cloud_storage_again(
    admin: httpx.Client, bucket: tuple[Any, int], tmp_path: Path
) -> None:
    s3, storage_id = bucket
    keys = []
    for path in write_images(tmp_path, ["p1.png", "p0.png"]):
        keys.append(f"photos/{path.name}")
        s3.upload_file(str(path), "frames", keys[-1])
    created = admin.post("/api/tasks", json={"name": "cloudy", "labels": LABELS}).json()
    body = {"cloud_storage_id": storage_id, "server_files": keys}
    started = admin.post(f"/api/tasks/{created['id']}/data", json=body)
    assert started.status_code == 202, started.text
    assert wait_for_request(admin, started.json()["rq_id"])["status"] == "finished"
    content = backup(admin, "task", created["id"], lightweight="True")
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert [n for n in archive.namelist() if n.startswith("data/")] == ["data/manifest.jsonl"]
    data = json.loads(archive.read("task.json"))["data"]
    assert data["storage"] == "cloud_storage" and data["cloud_storage_id"] == storage_id

    status = restore(admin, "task", content)
    assert status["status"] == "finished", status
    copy = status["result_id"]
    meta = admin.get(f"/api/tasks/{copy}/data/meta").json()
    assert [f["name"] for f in meta["frames"]] == ["photos/p0.png", "photos/p1.png"]
    assert meta["storage"] == "cloud_storage" and meta["cloud_storage_id"] == storage_id
    for number in range(2):
        assert frame(admin, copy, number) == frame(admin, created["id"], number)
    # a full backup of the same task carries the files
    names = zipfile.ZipFile(io.BytesIO(backup(admin, "task", created["id"]))).namelist()
    assert "data/photos/p0.png" in names
