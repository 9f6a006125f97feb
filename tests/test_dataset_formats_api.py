"""Datumaro, PASCAL VOC, Segmentation mask and COCO Keypoints through the request flow:
listed formats, task and job exports with and without images, imports into fresh tasks."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.formats.test_hostile import BILLION_LAUGHS
from tests.live_server import LiveServer
from tests.task_setup import upload_task, wait_for_request
from tests.test_datasets_api import cli

SKELETON_SVG = (
    '<line x1="10" y1="10" x2="50" y2="50" data-type="edge" data-node-from="1" data-node-to="2">'
    '</line><circle r="1.5" cx="10" cy="10" data-type="element node" data-element-id="1" '
    'data-node-id="1" data-label-name="head"></circle><circle r="1.5" cx="50" cy="50" '
    'data-type="element node" data-element-id="2" data-node-id="2" data-label-name="hand"></circle>'
)
LABELS = [
    {"name": "car", "attributes": [
        {"name": "model", "mutable": False, "input_type": "select", "values": ["a", "b"]}]},
    {"name": "weather", "type": "tag"},
    {"name": "person", "type": "skeleton", "svg": SKELETON_SVG,
     "sublabels": [{"name": "head", "type": "points"}, {"name": "hand", "type": "points"}]},
]  # fmt: skip
FRAMES = [f"{i}.png" for i in range(4)]
NEW_FORMATS = ("Datumaro 1.0", "PASCAL VOC 1.1", "Segmentation mask 1.1", "COCO Keypoints 1.0")


def _labels(admin: httpx.Client, task_id: int) -> dict[str, Any]:
    labels = admin.get("/api/labels", params={"task_id": task_id}).json()["results"]
    return {label["name"]: label for label in labels}


@pytest.fixture(scope="module")
def source(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("frames")
    task = upload_task(admin, folder, FRAMES, {"name": "src", "labels": LABELS, "segment_size": 2})
    labels = _labels(admin, task["id"])
    car, person = labels["car"], labels["person"]
    model = car["attributes"][0]["id"]
    nodes = {sub["name"]: sub["id"] for sub in person["sublabels"]}
    body = {
        "shapes": [
            {"type": "rectangle", "label_id": car["id"], "frame": 0, "points": [1, 2, 30, 40],
             "occluded": True, "attributes": [{"spec_id": model, "value": "b"}]},
            {"type": "polygon", "label_id": car["id"], "frame": 1, "points": [10, 10, 40, 10, 40, 30, 10, 30],
             "attributes": [{"spec_id": model, "value": "a"}]},
            {"type": "skeleton", "label_id": person["id"], "frame": 2, "points": [], "elements": [
                {"type": "points", "label_id": nodes["head"], "frame": 2, "points": [10, 10]},
                {"type": "points", "label_id": nodes["hand"], "frame": 2, "points": [20, 20], "outside": True},
            ]},
        ],
        "tags": [{"label_id": labels["weather"]["id"], "frame": 3}],
        "tracks": [
            {"label_id": car["id"], "frame": 0, "attributes": [{"spec_id": model, "value": "a"}], "shapes": [
                {"type": "rectangle", "frame": 0, "points": [5, 5, 15, 15]},
                {"type": "rectangle", "frame": 1, "points": [7, 7, 17, 17]},
                {"type": "rectangle", "frame": 2, "points": [7, 7, 17, 17], "outside": True},
            ]},
        ],
    }  # fmt: skip
    response = admin.put(f"/api/tasks/{task['id']}/annotations/", json=body)
    assert response.status_code == 200, response.text
    return {"task": task, "folder": folder}


def export(admin: httpx.Client, target: str, ident: int, fmt: str, images: bool) -> bytes:
    response = admin.post(
        f"/api/{target}s/{ident}/dataset/export",
        params={"format": fmt, "save_images": str(images).lower()},
    )
    assert response.status_code == 202, response.text
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "finished", status
    download = admin.get(status["result_url"])
    assert download.status_code == 200
    return download.content


def import_into(admin: httpx.Client, task_id: int, fmt: str, content: bytes) -> dict[str, Any]:
    response = admin.post(
        f"/api/tasks/{task_id}/annotations/",
        params={"format": fmt},
        files={"annotation_file": ("upload.zip", content, "application/zip")},
    )
    assert response.status_code == 202, response.text
    return wait_for_request(admin, response.json()["rq_id"])


def named(admin: httpx.Client, task_id: int) -> dict[str, list]:
    """The task's annotations with label and attribute names for ids, without object ids."""
    labels = _labels(admin, task_id)
    names = {label["id"]: name for name, label in labels.items()}
    names.update(
        {sub["id"]: sub["name"] for label in labels.values() for sub in label.get("sublabels", [])}
    )
    specs = {a["id"]: a["name"] for label in labels.values() for a in label["attributes"]}

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            result = {}
            for key, item in value.items():
                if key in ("id", "source"):
                    continue
                if key == "label_id":
                    result["label"] = names[item]
                elif key == "spec_id":
                    result["name"] = specs[item]
                else:
                    result[key] = plain(item)
            return result
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    data = plain(admin.get(f"/api/tasks/{task_id}/annotations/").json())
    return {key: sorted(data[key], key=repr) for key in ("tags", "shapes", "tracks")}


def fresh(admin: httpx.Client, folder: Path, name: str) -> int:
    task = upload_task(admin, folder / name, FRAMES, {"name": name, "labels": LABELS})
    return int(task["id"])


def test_the_new_formats_are_listed(admin: httpx.Client) -> None:
    listing = admin.get("/api/server/annotation/formats").json()
    exporters = {f["name"] for f in listing["exporters"]}
    importers = {f["name"] for f in listing["importers"]}
    assert set(NEW_FORMATS) <= exporters and set(NEW_FORMATS) <= importers


def test_datumaro_round_trips_everything(admin: httpx.Client, source: dict[str, Any]) -> None:
    content = export(admin, "task", source["task"]["id"], "Datumaro 1.0", images=True)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = set(archive.namelist())
    assert {"annotations/default.json", "images/default/0.png", "images/default/3.png"} <= names
    target = fresh(admin, source["folder"], "dst-datumaro")
    assert import_into(admin, target, "Datumaro 1.0", content)["status"] == "finished"
    assert named(admin, target) == named(admin, source["task"]["id"])


def test_voc_carries_boxes_tags_and_box_tracks(admin: httpx.Client, source: dict[str, Any]) -> None:
    content = export(admin, "task", source["task"]["id"], "PASCAL VOC 1.1", images=False)
    target = fresh(admin, source["folder"], "dst-voc")
    assert import_into(admin, target, "PASCAL VOC 1.1", content)["status"] == "finished"
    original, imported = named(admin, source["task"]["id"]), named(admin, target)
    assert imported["tags"] == original["tags"]
    assert imported["tracks"] == original["tracks"]
    boxes = [s for s in original["shapes"] if s["type"] == "rectangle"]
    assert [s for s in imported["shapes"] if s["type"] == "rectangle"] == boxes
    (polygon,) = [s for s in imported["shapes"] if s["type"] == "polygon"]
    assert (polygon["label"], polygon["frame"]) == ("car", 1)
    assert sorted(zip(polygon["points"][0::2], polygon["points"][1::2], strict=True)) == [
        (10, 10), (10, 30), (40, 10), (40, 30)]  # fmt: skip


def test_segmentation_masks_come_back_as_polygons(
    admin: httpx.Client, source: dict[str, Any]
) -> None:
    content = export(admin, "task", source["task"]["id"], "Segmentation mask 1.1", images=True)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert {"JPEGImages/0.png", "SegmentationClass/0.png", "labelmap.txt"} <= set(
            archive.namelist()
        )
    target = fresh(admin, source["folder"], "dst-mask")
    assert import_into(admin, target, "Segmentation mask 1.1", content)["status"] == "finished"
    shapes = named(admin, target)["shapes"]
    # the box, the polygon, and the track's box on frames 0 and 1 (its job's piece is closed
    # after the job's last frame, so it does not run on into the next job)
    assert all(s["type"] == "polygon" and s["label"] == "car" for s in shapes)
    assert sorted(s["frame"] for s in shapes) == [0, 0, 1, 1]


def test_coco_keypoints_carry_skeletons(admin: httpx.Client, source: dict[str, Any]) -> None:
    content = export(admin, "task", source["task"]["id"], "COCO Keypoints 1.0", images=False)
    target = fresh(admin, source["folder"], "dst-keypoints")
    assert import_into(admin, target, "COCO Keypoints 1.0", content)["status"] == "finished"
    skeletons = [s for s in named(admin, source["task"]["id"])["shapes"] if s["type"] == "skeleton"]
    assert named(admin, target)["shapes"] == skeletons


@pytest.mark.parametrize("fmt", NEW_FORMATS)
def test_a_job_exports_only_its_frames(
    admin: httpx.Client, source: dict[str, Any], fmt: str
) -> None:
    jobs = admin.get("/api/jobs", params={"task_id": source["task"]["id"], "sort": "id"})
    second = jobs.json()["results"][1]
    content = export(admin, "job", second["id"], fmt, images=True)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        images = sorted(n.rsplit("/", 1)[-1] for n in archive.namelist() if "images/" in n.lower())
    assert images == ["2.png", "3.png"]


def test_a_hostile_voc_upload_fails_and_changes_nothing(
    admin: httpx.Client, source: dict[str, Any]
) -> None:
    target = fresh(admin, source["folder"], "dst-hostile-voc")
    before = admin.get(f"/api/tasks/{target}/annotations/").json()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Annotations/0.xml", BILLION_LAUGHS.replace(b"annotations", b"annotation"))
    status = import_into(admin, target, "PASCAL VOC 1.1", buffer.getvalue())
    assert status["status"] == "failed" and "entities" in status["message"]
    assert admin.get(f"/api/tasks/{target}/annotations/").json() == before


def test_cvat_video_numbers_frames_with_start_frame_and_step(
    admin: httpx.Client, source: dict[str, Any]
) -> None:
    names = [f"{i}.png" for i in range(7)]
    spec = {"name": "stepped", "labels": LABELS}
    folder = source["folder"] / "stepped"
    task = upload_task(admin, folder, names, spec, start_frame=1, frame_filter="step=2")
    car = _labels(admin, task["id"])["car"]
    body = {"tracks": [{"label_id": car["id"], "frame": 0, "shapes": [
        {"type": "rectangle", "frame": 0, "points": [1, 1, 5, 5]},
        {"type": "rectangle", "frame": 2, "points": [3, 3, 7, 7], "outside": True},
    ]}]}  # fmt: skip
    assert admin.put(f"/api/tasks/{task['id']}/annotations/", json=body).status_code == 200
    content = export(admin, "task", task["id"], "CVAT for video 1.1", images=False)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        xml = archive.read("annotations.xml").decode()
    assert 'frame="1"' in xml and 'frame="3"' in xml and 'frame="5"' in xml
    target = upload_task(admin, folder / "dst", names, spec, start_frame=1, frame_filter="step=2")
    assert import_into(admin, target["id"], "CVAT 1.1", content)["status"] == "finished"
    assert named(admin, target["id"]) == named(admin, task["id"])


def test_a_finished_export_says_what_the_format_left_out(
    admin: httpx.Client, source: dict[str, Any]
) -> None:
    response = admin.post(
        f"/api/tasks/{source['task']['id']}/dataset/export",
        params={"format": "COCO Keypoints 1.0"},
    )
    status = wait_for_request(admin, response.json()["rq_id"])
    assert status["status"] == "finished"
    assert "3 rectangle shapes were left out" in status["message"]  # 1 box, 2 track frames
    assert "1 tags were left out" in status["message"]


@pytest.mark.parametrize("fmt", ["Datumaro 1.0", "Segmentation mask 1.1"])
def test_cvat_cli_exports_and_imports(
    server: LiveServer, admin: httpx.Client, source: dict[str, Any], tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "export.zip"
    exported = cli(server, "task", "export-dataset", str(source["task"]["id"]), str(out),
                   "--format", fmt, "--with-images", "True",
                   "--completion_verification_period", "0.1")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    target = fresh(admin, source["folder"], f"dst-cli-{fmt.split()[0].lower()}")
    imported = cli(server, "task", "import-dataset", str(target), str(out), "--format", fmt)
    assert imported.returncode == 0, imported.stderr
    shapes = named(admin, target)["shapes"]
    assert shapes and all(s["frame"] in range(4) for s in shapes)


def test_a_job_export_imports_into_a_job(admin: httpx.Client, source: dict[str, Any]) -> None:
    def second_job(task_id: int) -> int:
        jobs = admin.get("/api/jobs", params={"task_id": task_id, "sort": "id"}).json()
        return int(jobs["results"][1]["id"])

    content = export(admin, "job", second_job(source["task"]["id"]), "Datumaro 1.0", False)
    folder = source["folder"] / "dst-job"
    target = upload_task(
        admin, folder, FRAMES, {"name": "dst-job", "labels": LABELS, "segment_size": 2}
    )
    response = admin.post(
        f"/api/jobs/{second_job(target['id'])}/annotations/",
        params={"format": "Datumaro 1.0"},
        files={"annotation_file": ("upload.zip", content, "application/zip")},
    )
    assert response.status_code == 202, response.text
    assert wait_for_request(admin, response.json()["rq_id"])["status"] == "finished"
    original = named(admin, source["task"]["id"])
    on_job = {key: [o for o in original[key] if o["frame"] >= 2] for key in original}
    assert named(admin, target["id"]) == on_job
