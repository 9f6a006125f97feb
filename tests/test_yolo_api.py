"""The YOLO formats through the request flow: cvat-cli, tasks and jobs, with and without images."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import LiveServer
from tests.task_setup import upload_task, wait_for_request
from tests.test_datasets_api import cli

SVG = (
    '<circle r="1" cx="10" cy="10" data-type="element node" data-element-id="1" '
    'data-node-id="1" data-label-name="head"></circle><circle r="1" cx="20" cy="20" '
    'data-type="element node" data-element-id="2" data-node-id="2" data-label-name="hand"></circle>'
)
LABELS = [
    {"name": "car", "attributes": [
        {"name": "color", "mutable": False, "input_type": "select", "values": ["red", "blue"]}]},
    {"name": "person"},
    {"name": "body", "type": "skeleton", "svg": SVG,
     "sublabels": [{"name": "head", "type": "points"}, {"name": "hand", "type": "points"}]},
    {"name": "scene", "type": "tag"},
]  # fmt: skip
FRAMES = [f"{i}.png" for i in range(4)]


def make_task(admin: httpx.Client, folder: Path, name: str) -> dict[str, Any]:
    return upload_task(
        admin, folder / name, FRAMES, {"name": name, "labels": LABELS, "segment_size": 2}
    )


def label_ids(admin: httpx.Client, task_id: int) -> dict[str, int]:
    result = admin.get("/api/labels", params={"task_id": task_id, "page_size": "all"}).json()
    ids = {}
    for label in result["results"]:
        ids[label["name"]] = label["id"]
        for sub in label.get("sublabels", []):
            ids[sub["name"]] = sub["id"]
    return ids


@pytest.fixture(scope="module")
def source(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("frames")
    task = make_task(admin, folder, "yolo-src")
    ids = label_ids(admin, task["id"])
    body = {
        "shapes": [
            {"type": "rectangle", "label_id": ids["car"], "frame": 0, "points": [1, 2, 30, 40]},
            {"type": "rectangle", "label_id": ids["person"], "frame": 2, "points": [10, 10, 30, 20], "rotation": 30},
            {"type": "polygon", "label_id": ids["person"], "frame": 1, "points": [0, 0, 20, 0, 20, 20]},
            {"type": "skeleton", "label_id": ids["body"], "frame": 3, "points": [], "elements": [
                {"type": "points", "label_id": ids["head"], "frame": 3, "points": [10, 12]},
                {"type": "points", "label_id": ids["hand"], "frame": 3, "points": [20, 22], "occluded": True},
            ]},
        ],
        "tracks": [
            {"label_id": ids["car"], "frame": 1, "shapes": [
                {"type": "rectangle", "frame": 1, "points": [0, 0, 10, 10]},
                {"type": "rectangle", "frame": 3, "points": [20, 20, 30, 30]},
            ]},
        ],
        "tags": [{"label_id": ids["scene"], "frame": 2}],
    }  # fmt: skip
    response = admin.put(f"/api/tasks/{task['id']}/annotations/", json=body)
    assert response.status_code == 200, response.text
    return {"task": task, "folder": folder}


def shapes_of(admin: httpx.Client, path: str, task_id: int, types: tuple[str, ...]) -> list[tuple]:
    """(type, label, frame, points, rotation, elements) of every shape and track frame kept."""
    names = {v: k for k, v in label_ids(admin, task_id).items()}
    data = admin.get(path).json()
    result = []
    for shape in data["shapes"]:
        if shape["type"] in types:
            elements = sorted(
                (
                    names[e["label_id"]],
                    [round(v, 1) for v in e["points"]],
                    e["occluded"],
                    e["outside"],
                )
                for e in shape["elements"]
            )
            points = [round(v, 1) for v in shape["points"]]
            result.append((shape["type"], names[shape["label_id"]], shape["frame"], points,
                           round(shape["rotation"], 1), elements))  # fmt: skip
    for track in data["tracks"]:  # the sample track: keyframes 1 and 3, interpolated on 2
        if track["shapes"][0]["type"] in types and track["frame"] == 1:  # its first job's piece
            for frame, points in (
                (1, [0, 0, 10, 10]),
                (2, [10, 10, 20, 20]),
                (3, [20, 20, 30, 30]),
            ):
                result.append(
                    (
                        "rectangle",
                        names[track["label_id"]],
                        frame,
                        [float(v) for v in points],
                        0.0,
                        [],
                    )
                )
    return sorted(result)


def export(admin: httpx.Client, path: str, fmt: str, images: bool) -> bytes:
    params = {"format": fmt, "save_images": str(images).lower()}
    response = admin.post(f"{path}/dataset/export", params=params)
    assert response.status_code == 202, response.text
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "finished", status
    return admin.get(status["result_url"]).content


def import_(admin: httpx.Client, path: str, fmt: str, archive: bytes) -> dict[str, Any]:
    response = admin.post(
        f"{path}/annotations/",
        params={"format": fmt},
        files={"annotation_file": ("upload.zip", archive, "application/zip")},
    )
    assert response.status_code == 202, response.text
    return wait_for_request(admin, response.json()["rq_id"])


def test_cli_exports_and_imports_yolo(
    server: LiveServer, admin: httpx.Client, source: dict[str, Any], tmp_path: Path
) -> None:
    task_id = source["task"]["id"]
    out = tmp_path / "yolo.zip"
    exported = cli(server, "task", "export-dataset", str(task_id), str(out),
                   "--format", "YOLO 1.1", "--completion_verification_period", "0.1")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    with zipfile.ZipFile(out) as archive:
        assert {"obj.names", "obj.data", "train.txt", "obj_train_data/0.txt"} <= set(
            archive.namelist()
        )
    target = make_task(admin, source["folder"], "yolo-cli")
    imported = cli(
        server, "task", "import-dataset", str(target["id"]), str(out), "--format", "YOLO 1.1"
    )
    assert imported.returncode == 0, imported.stderr
    unrotated = [
        s
        for s in shapes_of(admin, f"/api/tasks/{task_id}/annotations/", task_id, ("rectangle",))
        if s[4] == 0
    ]
    assert (
        shapes_of(admin, f"/api/tasks/{target['id']}/annotations/", target["id"], ("rectangle",))
        == unrotated
    )


@pytest.mark.parametrize(
    ("fmt", "types", "images"),
    [
        ("Ultralytics YOLO Detection 1.0", ("rectangle",), True),
        ("Ultralytics YOLO Oriented Bounding Boxes 1.0", ("rectangle",), False),
        ("Ultralytics YOLO Segmentation 1.0", ("polygon",), False),
        ("Ultralytics YOLO Pose 1.0", ("skeleton",), True),
    ],
)
def test_ultralytics_formats_round_trip_over_http(
    admin: httpx.Client, source: dict[str, Any], fmt: str, types: tuple[str, ...], images: bool
) -> None:
    task_id = source["task"]["id"]
    archive = export(admin, f"/api/tasks/{task_id}", fmt, images)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        names = opened.namelist()
    assert "data.yaml" in names
    assert ("images/train/0.png" in names) == images
    target = make_task(admin, source["folder"], f"dst-{fmt.split()[2].lower()}")
    assert import_(admin, f"/api/tasks/{target['id']}", fmt, archive)["status"] == "finished"
    expected = shapes_of(admin, f"/api/tasks/{task_id}/annotations/", task_id, types)
    if fmt == "Ultralytics YOLO Detection 1.0":
        expected = [s for s in expected if s[4] == 0]
    assert (
        shapes_of(admin, f"/api/tasks/{target['id']}/annotations/", target["id"], types) == expected
    )


def test_a_job_exports_and_imports_its_frames_only(
    admin: httpx.Client, source: dict[str, Any]
) -> None:
    task_id = source["task"]["id"]
    jobs = admin.get("/api/jobs", params={"task_id": task_id}).json()["results"]
    second = next(job for job in jobs if job["start_frame"] == 2)
    archive = export(admin, f"/api/jobs/{second['id']}", "Ultralytics YOLO Detection 1.0", False)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.read("train.txt").decode().splitlines() == [
            "images/train/2.png",
            "images/train/3.png",
        ]
    target = make_task(admin, source["folder"], "dst-job")
    target_jobs = admin.get("/api/jobs", params={"task_id": target["id"]}).json()["results"]
    target_second = next(job for job in target_jobs if job["start_frame"] == 2)
    status = import_(
        admin, f"/api/jobs/{target_second['id']}", "Ultralytics YOLO Detection 1.0", archive
    )
    assert status["status"] == "finished", status
    got = shapes_of(admin, f"/api/tasks/{target['id']}/annotations/", target["id"], ("rectangle",))
    assert [(s[1], s[2], s[3]) for s in got] == [
        ("car", 2, [10.0, 10.0, 20.0, 20.0]),
        ("car", 3, [20.0, 20.0, 30.0, 30.0]),
    ]  # the track piece of that job; its rotated box is not carried


def test_classification_round_trips_tags(admin: httpx.Client, source: dict[str, Any]) -> None:
    fmt = "Ultralytics YOLO Classification 1.0"
    archive = export(admin, f"/api/tasks/{source['task']['id']}", fmt, True)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert sorted(opened.namelist()) == ["train/labels.json", "train/scene/2.png"]
    target = make_task(admin, source["folder"], "dst-classification")
    assert import_(admin, f"/api/tasks/{target['id']}", fmt, archive)["status"] == "finished"
    tags = admin.get(f"/api/tasks/{target['id']}/annotations/").json()["tags"]
    assert [(t["frame"], t["label_id"]) for t in tags] == [
        (2, label_ids(admin, target["id"])["scene"])
    ]


def test_a_broken_yolo_file_fails_the_request_and_changes_nothing(
    admin: httpx.Client, source: dict[str, Any]
) -> None:
    target = make_task(admin, source["folder"], "dst-broken")
    path = f"/api/tasks/{target['id']}"
    assert (
        admin.put(
            f"{path}/annotations/",
            json={"tags": [{"label_id": label_ids(admin, target["id"])["scene"], "frame": 0}]},
        ).status_code
        == 200
    )
    before = admin.get(f"{path}/annotations/").json()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("obj.names", "car\n")
        archive.writestr("obj_train_data/0.txt", "0 0.5 0.5 0.1 0.1\n")
        archive.writestr("obj_train_data/1.txt", "0 0.5 zero 0.1 0.1\n")
    status = import_(admin, path, "YOLO 1.1", buffer.getvalue())
    assert status["status"] == "failed"
    assert "'zero' is not a number" in status["message"]
    assert admin.get(f"{path}/annotations/").json() == before
