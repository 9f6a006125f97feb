"""Task and project backups: export → import round trips over REST and with cvat-cli,
hostile archives refused, the permission policy; cloud storages in test_backup_buckets.py."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from cvat_sdk import make_client

from tests.conftest import register
from tests.images import write_images
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.task_setup import attach_files, upload_task, wait_for_request
from tests.test_dataset_formats_api import LABELS, named
from tests.test_datasets_api import cli
from tests.videos import write_video

FRAMES = [f"{i}.png" for i in range(4)]


def annotate(admin: httpx.Client, task_id: int) -> None:
    labels = {
        label["name"]: label
        for label in admin.get("/api/labels", params={"task_id": task_id}).json()["results"]
    }
    car, person = labels["car"], labels["person"]
    model = car["attributes"][0]["id"]
    nodes = {sub["name"]: sub["id"] for sub in person["sublabels"]}
    body = {
        "shapes": [
            {"type": "rectangle", "label_id": car["id"], "frame": 0, "points": [1, 2, 30, 40],
             "occluded": True, "z_order": 2, "attributes": [{"spec_id": model, "value": "b"}]},
            {"type": "polygon", "label_id": car["id"], "frame": 3, "points": [10, 10, 40, 10, 40, 30],
             "attributes": [{"spec_id": model, "value": "a"}]},
            {"type": "skeleton", "label_id": person["id"], "frame": 2, "points": [], "elements": [
                {"type": "points", "label_id": nodes["head"], "frame": 2, "points": [10, 10]},
                {"type": "points", "label_id": nodes["hand"], "frame": 2, "points": [20, 20], "outside": True},
            ]},
        ],
        "tags": [{"label_id": labels["weather"]["id"], "frame": 1}],
        "tracks": [
            {"label_id": car["id"], "frame": 0, "attributes": [{"spec_id": model, "value": "a"}], "shapes": [
                {"type": "rectangle", "frame": 0, "points": [5, 5, 15, 15]},
                {"type": "rectangle", "frame": 1, "points": [7, 7, 17, 17], "outside": True},
            ]},
        ],
    }  # fmt: skip
    response = admin.put(f"/api/tasks/{task_id}/annotations/", json=body)
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def source(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A task of four frames in two jobs, annotated, with a finished ground truth job, a job
    in validation and a deleted frame."""
    folder = tmp_path_factory.mktemp("frames")
    task = upload_task(
        admin, folder, FRAMES, {"name": "src task", "labels": LABELS, "segment_size": 2}
    )
    annotate(admin, task["id"])
    gt = admin.post(
        "/api/jobs",
        json={"type": "ground_truth", "task_id": task["id"], "frame_selection_method": "manual",
              "frames": [1, 2]},
    ).json()  # fmt: skip
    weather = next(
        label["id"]
        for label in admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"]
        if label["name"] == "weather"
    )
    put = admin.put(
        f"/api/jobs/{gt['id']}/annotations/", json={"tags": [{"label_id": weather, "frame": 2}]}
    )
    assert put.status_code == 200, put.text
    jobs = admin.get("/api/jobs", params={"task_id": task["id"], "sort": "id"}).json()["results"]
    done = {"stage": "acceptance", "state": "completed"}
    assert admin.patch(f"/api/jobs/{gt['id']}", json=done).status_code == 200
    review = {"stage": "validation", "state": "in progress"}
    assert admin.patch(f"/api/jobs/{jobs[1]['id']}", json=review).status_code == 200
    deleted = admin.patch(f"/api/tasks/{task['id']}/data/meta", json={"deleted_frames": [3]})
    assert deleted.status_code == 200, deleted.text
    return {"task": task, "folder": folder}


def backup(client: httpx.Client, kind: str, ident: int, **params: Any) -> bytes:
    started = client.post(f"/api/{kind}s/{ident}/backup/export", params=params)
    assert started.status_code == 202, started.text
    status = wait_for_request(client, started.json()["rq_id"])
    assert status["status"] == "finished", status
    assert status["operation"]["type"] == "export:backup"
    download = client.get(status["result_url"])
    assert download.status_code == 200
    assert f"{kind}_" in download.headers["content-disposition"]
    return download.content


def restore(client: httpx.Client, kind: str, content: bytes, **headers: str) -> dict[str, Any]:
    response = client.post(
        f"/api/{kind}s/backup/",
        files={f"{kind}_file": ("backup.zip", content, "application/zip")},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return wait_for_request(client, response.json()["rq_id"])


def jobs_of(client: httpx.Client, task_id: int) -> list[dict[str, Any]]:
    listed = client.get("/api/jobs", params={"task_id": task_id, "sort": "id"}).json()["results"]
    return [
        {key: job[key] for key in ("type", "stage", "state", "start_frame", "stop_frame")}
        for job in listed
    ]


def job_annotations(client: httpx.Client, task_id: int) -> list[dict[str, Any]]:
    """Every job's annotations (ground truth included), names for label and attribute ids,
    without object ids."""
    labels = client.get("/api/labels", params={"task_id": task_id}).json()["results"]
    names = {label["id"]: label["name"] for label in labels}
    names |= {sub["id"]: sub["name"] for label in labels for sub in label.get("sublabels", [])}
    specs = {a["id"]: a["name"] for label in labels for a in label["attributes"]}

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            renamed = {"label_id": "label", "spec_id": "name"}
            lookup = {"label_id": names, "spec_id": specs}
            return {
                renamed.get(key, key): lookup[key][item] if key in lookup else plain(item)
                for key, item in value.items()
                if key != "id"
            }
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    listed = client.get("/api/jobs", params={"task_id": task_id, "sort": "id"}).json()["results"]
    result = []
    for job in listed:
        data = plain(client.get(f"/api/jobs/{job['id']}/annotations/").json())
        result.append({kind: sorted(data[kind], key=repr) for kind in ("tags", "shapes", "tracks")})
    return result


def frame(client: httpx.Client, task_id: int, number: int) -> bytes:
    response = client.get(
        f"/api/tasks/{task_id}/data/",
        params={"type": "frame", "number": number, "quality": "original"},
    )
    assert response.status_code == 200
    return response.content


def labels_of(client: httpx.Client, task_id: int) -> list[dict[str, Any]]:
    def plain(label: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": label["name"],
            "color": label["color"],
            "type": label["type"],
            "attributes": [{k: v for k, v in a.items() if k != "id"} for a in label["attributes"]],
            "sublabels": [plain(sub) for sub in label.get("sublabels", [])],
        }

    listed = client.get("/api/labels", params={"task_id": task_id}).json()["results"]
    return sorted((plain(label) for label in listed), key=lambda label: label["name"])


def test_a_task_backup_restores_labels_frames_jobs_and_annotations(
    admin: httpx.Client, source: dict[str, Any]
) -> None:
    task_id = source["task"]["id"]
    content = backup(admin, "task", task_id)
    archive = zipfile.ZipFile(io.BytesIO(content))
    names = archive.namelist()
    assert {"task.json", "annotations.json", "data/manifest.jsonl"} <= set(names)
    assert {f"data/{name}" for name in FRAMES} <= set(names)
    meta = json.loads(archive.read("task.json"))
    assert meta["version"] == "1.0" and meta["name"] == "src task"
    assert [job["type"] for job in meta["jobs"]] == ["annotation", "annotation", "ground_truth"]
    assert meta["jobs"][2]["frames"] == [1, 2] and meta["data"]["deleted_frames"] == [3]
    skeleton = next(label for label in meta["labels"] if label["type"] == "skeleton")
    assert 'data-label-name="head"' in skeleton["svg"]
    first = json.loads(archive.read("annotations.json"))[0]
    assert first["shapes"][0]["label"] == "car" and "id" not in first["shapes"][0]

    status = restore(admin, "task", content)
    assert status["status"] == "finished", status
    assert status["operation"]["type"] == "import:backup"
    copy = status["result_id"]
    assert copy != task_id
    assert admin.get(f"/api/tasks/{copy}").json()["name"] == "src task"
    assert labels_of(admin, copy) == labels_of(admin, task_id)
    assert jobs_of(admin, copy) == jobs_of(admin, task_id)
    assert job_annotations(admin, copy) == job_annotations(admin, task_id)
    assert named(admin, copy) == named(admin, task_id)
    meta_of = {t: admin.get(f"/api/tasks/{t}/data/meta").json() for t in (task_id, copy)}
    assert meta_of[copy]["deleted_frames"] == [3]
    assert [f["name"] for f in meta_of[copy]["frames"]] == FRAMES
    for number in range(len(FRAMES)):
        assert frame(admin, copy, number) == frame(admin, task_id, number)


def test_the_restored_history_starts_at_the_import_by_the_importer(
    server: LiveServer, admin: httpx.Client, source: dict[str, Any]
) -> None:
    content = backup(admin, "task", source["task"]["id"])
    restorer = register(server, "restorer")
    status = restore(restorer, "task", content)
    assert status["status"] == "finished", status
    task = restorer.get(f"/api/tasks/{status['result_id']}").json()
    assert task["owner"]["username"] == "restorer"
    job = restorer.get("/api/jobs", params={"task_id": task["id"], "sort": "id"}).json()
    first = job["results"][0]["id"]
    history = restorer.get(f"/api/jobs/{first}/history", params={"page_size": "all"}).json()
    kinds = [entry["type"] for entry in history["results"]]
    assert kinds[0] == "Created" and "AnnotationsCreated" in kinds
    assert {entry["actor"]["username"] for entry in history["results"] if entry["actor"]} == {
        "restorer"
    }


def test_cvat_cli_backs_up_and_restores_a_task(
    server: LiveServer, admin: httpx.Client, source: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "task_backup.zip"
    made = cli(server, "task", "backup", str(source["task"]["id"]), str(out))
    assert made.returncode == 0, made.stderr
    assert zipfile.is_zipfile(out)
    restored = cli(server, "task", "create-from-backup", str(out))
    assert restored.returncode == 0, restored.stderr
    new_id = int(restored.stdout.strip().split()[-1])
    assert job_annotations(admin, new_id) == job_annotations(admin, source["task"]["id"])


def test_a_project_backup_restores_its_tasks(
    admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("project")
    project = admin.post("/api/projects", json={"name": "roads", "labels": LABELS}).json()
    ids = []
    for name, subset in (("day", "train"), ("night", "val")):
        task = upload_task(
            admin,
            folder / name,
            FRAMES[:3],
            {"name": name, "project_id": project["id"], "subset": subset},
        )
        annotate_project_task(admin, task["id"])
        ids.append(task["id"])
    empty = admin.post("/api/tasks", json={"name": "no data", "project_id": project["id"]})
    assert empty.status_code == 201
    content = backup(admin, "project", project["id"])
    names = zipfile.ZipFile(io.BytesIO(content)).namelist()
    assert "project.json" in names and "task_0/task.json" in names and "task_1/task.json" in names
    assert not any(name.startswith("task_2/") for name in names)

    status = restore(admin, "project", content)
    assert status["status"] == "finished", status
    copy = status["result_id"]
    restored = admin.get("/api/tasks", params={"project_id": copy, "sort": "id"}).json()
    assert [(t["name"], t["subset"]) for t in restored["results"]] == [
        ("day", "train"),
        ("night", "val"),
    ]
    for original, new in zip(ids, [t["id"] for t in restored["results"]], strict=True):
        assert named(admin, new) == named(admin, original)
        assert frame(admin, new, 2) == frame(admin, original, 2)
    project_labels = admin.get("/api/labels", params={"project_id": copy}).json()["results"]
    assert sorted(label["name"] for label in project_labels) == ["car", "person", "weather"]


def annotate_project_task(admin: httpx.Client, task_id: int) -> None:
    labels = {
        label["name"]: label["id"]
        for label in admin.get("/api/labels", params={"task_id": task_id}).json()["results"]
    }
    body = {
        "shapes": [{"type": "rectangle", "label_id": labels["car"], "frame": 1,
                    "points": [1, 1, 9, 9]}],
        "tags": [{"label_id": labels["weather"], "frame": 2}],
    }  # fmt: skip
    assert admin.put(f"/api/tasks/{task_id}/annotations/", json=body).status_code == 200


def zipped(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for name, content in members.items():
            out.writestr(name, content)
    return buffer.getvalue()


def good_members(content: bytes) -> dict[str, bytes | str]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture(scope="module")
def good(admin: httpx.Client, source: dict[str, Any]) -> dict[str, bytes | str]:
    return good_members(backup(admin, "task", source["task"]["id"]))


def _with_task_json(members: dict[str, bytes | str], **changes: Any) -> dict[str, bytes | str]:
    meta = json.loads(members["task.json"])
    meta.update(changes)
    return {**members, "task.json": json.dumps(meta)}


def _with_annotations(members: dict[str, bytes | str], first: Any) -> dict[str, bytes | str]:
    annotations = json.loads(members["annotations.json"])
    annotations[0] = first
    return {**members, "annotations.json": json.dumps(annotations)}


HOSTILE: dict[str, Any] = {
    "zip slip": lambda m: {**m, "../../evil.png": m["data/0.png"]},
    "absolute path": lambda m: {**m, "/etc/evil.png": m["data/0.png"]},
    "no task.json": lambda m: {k: v for k, v in m.items() if k != "task.json"},
    "not json": lambda m: {**m, "task.json": "{not json"},
    "wrong version": lambda m: _with_task_json(m, version="9.9"),
    "blank name": lambda m: _with_task_json(m, name="   "),
    "honeypots": lambda m: _with_task_json(
        m, data={**json.loads(m["task.json"])["data"], "validation_layout": {"mode": "gt_pool"}}
    ),
    "bad labels": lambda m: _with_task_json(m, labels=[{"name": "x", "type": "blob"}]),
    "jobs and annotations disagree": lambda m: _with_task_json(m, jobs=[]),
    "unknown label": lambda m: _with_annotations(
        m, {"tags": [{"label": "ghost", "frame": 0}], "shapes": [], "tracks": []}
    ),
    "frame outside its job": lambda m: _with_annotations(
        m, {"tags": [{"label": "weather", "frame": 3}], "shapes": [], "tracks": []}
    ),
    "no media": lambda m: {k: v for k, v in m.items() if not k.startswith("data/")},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_and_broken_archives_are_refused_whole(
    admin: httpx.Client, good: dict[str, bytes | str], case: str
) -> None:
    before = admin.get("/api/tasks").json()["count"]
    response = admin.post(
        "/api/tasks/backup/",
        files={"task_file": ("b.zip", zipped(HOSTILE[case](good)), "application/zip")},
    )
    assert response.status_code == 400, response.text
    assert isinstance(response.json(), dict)
    assert admin.get("/api/tasks").json()["count"] == before


def test_an_archive_bomb_and_a_non_zip_are_refused(admin: httpx.Client) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("task.json", "{}")
        out.writestr("data/huge.png", b"\0" * (4 << 20))
    for content in (bomb.getvalue(), b"just some bytes"):
        response = admin.post(
            "/api/tasks/backup/", files={"task_file": ("b.zip", content, "application/zip")}
        )
        assert response.status_code == 400, response.text
        assert "task_file" in response.json()
    missing = admin.post("/api/tasks/backup/", data={"x": "1"})
    assert missing.status_code == 400 and "task_file" in missing.json()


def test_only_the_staff_export_and_download_backups(
    server: LiveServer, admin: httpx.Client, source: dict[str, Any]
) -> None:
    task_id = source["task"]["id"]
    stranger = register(server, "stranger")
    assert stranger.post(f"/api/tasks/{task_id}/backup/export").status_code == 404
    started = admin.post(f"/api/tasks/{task_id}/backup/export").json()
    wait_for_request(admin, started["rq_id"])
    download = stranger.get(
        f"/api/tasks/{task_id}/backup/download", params={"rq_id": started["rq_id"]}
    )
    assert download.status_code == 404
    # someone who sees the task through a job but is not its staff may not back it up
    job = admin.get("/api/jobs", params={"task_id": task_id, "sort": "id"}).json()["results"][0]
    worker_id = stranger.get("/api/users/self").json()["id"]
    assert admin.patch(f"/api/jobs/{job['id']}", json={"assignee": worker_id}).status_code == 200
    assert stranger.get(f"/api/tasks/{task_id}").status_code == 200
    assert stranger.post(f"/api/tasks/{task_id}/backup/export").status_code == 403
    assert admin.patch(f"/api/jobs/{job['id']}", json={"assignee": None}).status_code == 200
    project = admin.post("/api/projects", json={"name": "private", "labels": LABELS}).json()
    assert stranger.post(f"/api/projects/{project['id']}/backup/export").status_code == 404


def test_a_task_without_data_is_not_backed_up(admin: httpx.Client) -> None:
    task = admin.post("/api/tasks", json={"name": "empty", "labels": LABELS}).json()
    response = admin.post(f"/api/tasks/{task['id']}/backup/export")
    assert response.status_code == 400
    assert "no data" in response.json()["detail"]


def _round_trip(admin: httpx.Client, task_id: int) -> int:
    status = restore(admin, "task", backup(admin, "task", task_id))
    assert status["status"] == "finished", status
    return int(status["result_id"])


def test_a_video_task_keeps_its_video_and_frame_range(admin: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "street.mp4"
    write_video(path, frames=40, keyint=10)
    task_id, status = attach_files(
        admin,
        {"name": "video", "labels": LABELS, "segment_size": 5, "overlap": 2},
        [path],
        start_frame=3,
        stop_frame=30,
        frame_filter="step=2",
        use_cache="true",
    )
    assert status["status"] == "finished", status
    copy = _round_trip(admin, task_id)
    metas = [admin.get(f"/api/tasks/{t}/data/meta").json() for t in (task_id, copy)]
    for key in ("size", "start_frame", "stop_frame", "frame_filter", "frames", "chunk_size"):
        assert metas[0][key] == metas[1][key], key
    assert jobs_of(admin, copy) == jobs_of(admin, task_id)
    tasks = [admin.get(f"/api/tasks/{t}").json() for t in (task_id, copy)]
    assert tasks[1]["mode"] == "interpolation" and tasks[1]["overlap"] == tasks[0]["overlap"]
    assert frame(admin, copy, 5) == frame(admin, task_id, 5)


def test_archive_frames_keep_their_paths_and_context_images(
    admin: httpx.Client, tmp_path: Path
) -> None:
    paths = write_images(tmp_path / "src", ["a.jpg", "c.png", "l.png", "x.png"])
    data = {path.name: path.read_bytes() for path in paths}
    archive = tmp_path / "scene.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("a.jpg", data["a.jpg"])
        out.writestr("related_images/a_jpg/left.png", data["l.png"])
        out.writestr("sub/c.png", data["c.png"])
        out.writestr("sub/related_images/c_png/ctx.png", data["x.png"])
    task_id, status = attach_files(
        admin, {"name": "scene", "labels": LABELS}, [archive], sorting_method="random"
    )
    assert status["status"] == "finished", status
    copy = _round_trip(admin, task_id)
    metas = [admin.get(f"/api/tasks/{t}/data/meta").json() for t in (task_id, copy)]
    assert metas[1]["frames"] == metas[0]["frames"]
    assert [f["related_files"] for f in metas[1]["frames"]] == [1, 1]
    for number in range(2):
        assert frame(admin, copy, number) == frame(admin, task_id, number)
        contexts = [
            admin.get(
                f"/api/tasks/{t}/data", params={"type": "context_image", "number": number}
            ).content
            for t in (task_id, copy)
        ]
        first, second = (zipfile.ZipFile(io.BytesIO(c)) for c in contexts)
        assert [first.read(i) for i in first.infolist()] == [
            second.read(i) for i in second.infolist()
        ]


def test_the_sdk_restores_a_project_into_the_importers_organization(
    server: LiveServer, admin: httpx.Client, tmp_path: Path
) -> None:
    owner = register(server, "backup-owner")
    created = owner.post("/api/organizations", json={"slug": "restorers", "name": "Restorers"})
    assert created.status_code == 201, created.text
    project = admin.post("/api/projects", json={"name": "sdk", "labels": LABELS}).json()
    upload_task(admin, tmp_path / "t", FRAMES[:2], {"name": "t", "project_id": project["id"]})
    out = tmp_path / "project.zip"
    with make_client(server.url, credentials=("admin", ADMIN_PASSWORD)) as client:
        client.config.status_check_period = 0.1
        client.projects.retrieve(project["id"]).download_backup(out)
    with make_client(server.url, credentials=("backup-owner", "secret-pass-1")) as client:
        client.config.status_check_period = 0.1
        client.organization_slug = "restorers"
        restored = client.projects.create_from_backup(out)
        assert restored.organization is not None and restored.owner.username == "backup-owner"
        assert [task.name for task in restored.get_tasks()] == ["t"]


def test_an_archive_as_cvat_writes_it_is_restored(admin: httpx.Client, tmp_path: Path) -> None:
    """CVAT's own layout: jobs with a status only, attributes by name, a full frame range,
    the manifest's index.json, no stage or state."""
    images = write_images(tmp_path, ["0.png", "1.png", "2.png"])
    task = {
        "name": "made by cvat", "bug_tracker": "", "status": "annotation", "subset": "train",
        "labels": [{"name": "car", "color": "#fa3253", "type": "any", "svg": "", "sublabels": [],
                    "attributes": [{"name": "model", "mutable": False, "input_type": "select",
                                    "default_value": "a", "values": ["a", "b"]}]}],
        "version": "1.0",
        "data": {"chunk_size": 72, "image_quality": 70, "start_frame": 0, "stop_frame": 2,
                 "chunk_type": "imageset", "storage_method": "cache", "storage": "local",
                 "sorting_method": "lexicographical", "deleted_frames": []},
        "jobs": [
            {"start_frame": 0, "stop_frame": 1, "frames": [], "status": "completed", "type": "annotation"},
            {"start_frame": 2, "stop_frame": 2, "frames": [], "status": "annotation", "type": "annotation"},
        ],
    }  # fmt: skip
    box = {"type": "rectangle", "occluded": False, "outside": False, "z_order": 0,
           "rotation": 0.0, "points": [1.0, 2.0, 3.0, 4.0], "frame": 1, "group": 0,
           "source": "manual", "attributes": [{"value": "b", "name": "model"}],
           "elements": [], "label": "car"}  # fmt: skip
    annotations = [
        {"version": 3, "tags": [], "shapes": [box], "tracks": []},
        {"version": 0, "tags": [], "shapes": [], "tracks": []},
    ]
    manifest = [{"version": "1.1"}, {"type": "images"}] + [
        {"name": str(i), "extension": ".png", "width": 64, "height": 48, "meta": {}}
        for i in range(3)
    ]
    members: dict[str, bytes | str] = {
        "task.json": json.dumps(task),
        "annotations.json": json.dumps(annotations),
        "data/manifest.jsonl": "".join(json.dumps(line) + "\n" for line in manifest),
        "data/index.json": json.dumps({"0": 30, "1": 100, "2": 170}),
        **{f"data/{path.name}": path.read_bytes() for path in images},
    }
    status = restore(admin, "task", zipped(members))
    assert status["status"] == "finished", status
    task_id = status["result_id"]
    restored = admin.get(f"/api/tasks/{task_id}").json()
    assert (restored["name"], restored["subset"], restored["size"]) == ("made by cvat", "train", 3)
    assert [
        (j["start_frame"], j["stop_frame"], j["status"]) for j in jobs_listed(admin, task_id)
    ] == [
        (0, 1, "completed"),
        (2, 2, "annotation"),
    ]
    shapes = named(admin, task_id)["shapes"]
    assert [(s["label"], s["frame"], s["attributes"]) for s in shapes] == [
        ("car", 1, [{"name": "model", "value": "b"}])
    ]


def jobs_listed(client: httpx.Client, task_id: int) -> list[dict[str, Any]]:
    return client.get("/api/jobs", params={"task_id": task_id, "sort": "id"}).json()["results"]


def test_an_import_failing_midway_leaves_nothing_behind(
    admin: httpx.Client, good: dict[str, bytes | str]
) -> None:
    before = admin.get("/api/tasks").json()["count"]
    cut = {name: content for name, content in good.items() if name != "data/3.png"}
    status = restore(admin, "task", zipped(cut))
    assert status["status"] == "failed"
    assert "manifest" in status["message"]
    assert admin.get("/api/tasks").json()["count"] == before
    project = {"project.json": json.dumps({"name": "p", "version": "1.0", "labels": [{}]})}
    refused = admin.post(
        "/api/projects/backup/",
        files={"project_file": ("p.zip", zipped(project), "application/zip")},
    )
    assert refused.status_code == 400 and "labels[0].name" in refused.json()
