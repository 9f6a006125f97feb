"""Annotations through the REST API: every shape type, tracks, PATCH actions, bad bodies."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.task_setup import upload_task

SKELETON_SVG = (
    '<line x1="10" y1="10" x2="50" y2="50" data-type="edge" data-node-from="1" data-node-to="2">'
    '</line><circle r="1.5" cx="10" cy="10" data-type="element node" data-element-id="1" '
    'data-node-id="1" data-label-name="head"></circle><circle r="1.5" cx="50" cy="50" '
    'data-type="element node" data-element-id="2" data-node-id="2" data-label-name="hand"></circle>'
)
LABELS = [
    {
        "name": "car",
        "attributes": [
            {"name": "model", "mutable": False, "input_type": "select", "values": ["a", "b"]},
            {"name": "speed", "mutable": True, "input_type": "number", "values": ["0", "100", "1"]},
            {"name": "parked", "mutable": True, "input_type": "checkbox", "values": ["false"]},
            {"name": "note", "mutable": True, "input_type": "text", "values": [""]},
        ],
    },
    {"name": "sign", "type": "rectangle"},
    {"name": "weather", "type": "tag"},
    {
        "name": "person",
        "type": "skeleton",
        "svg": SKELETON_SVG,
        "sublabels": [{"name": "head", "type": "points"}, {"name": "hand", "type": "points"}],
    },
]


@pytest.fixture(scope="module")
def task(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("frames")
    return upload_task(
        admin,
        folder,
        [f"f{i:02d}.png" for i in range(10)],
        {"name": "annotated", "labels": LABELS, "segment_size": 5},
    )


@pytest.fixture(scope="module")
def ctx(admin: httpx.Client, task: dict[str, Any]) -> dict[str, Any]:
    labels = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"]
    by_name = {label["name"]: label for label in labels}
    jobs = admin.get("/api/jobs", params={"task_id": task["id"], "sort": "id"}).json()["results"]
    car = by_name["car"]
    return {
        "task": task,
        "jobs": [j["id"] for j in jobs],
        "car": car["id"],
        "attr": {a["name"]: a["id"] for a in car["attributes"]},
        "sign": by_name["sign"]["id"],
        "weather": by_name["weather"]["id"],
        "person": by_name["person"]["id"],
        "nodes": {s["name"]: s["id"] for s in by_name["person"]["sublabels"]},
    }


def every_kind(ctx: dict[str, Any], frame: int = 1) -> dict[str, Any]:
    car, attr, nodes = ctx["car"], ctx["attr"], ctx["nodes"]
    mask_box = [10.0, 20.0, 13.0, 21.0]  # 4 x 2 pixels
    return {
        "version": 0,
        "tags": [{"label_id": ctx["weather"], "frame": frame, "attributes": []}],
        "shapes": [
            {"type": "rectangle", "label_id": car, "frame": frame, "points": [1.5, 2.25, 30.125, 40.0],
             "rotation": 33.3, "z_order": 2, "occluded": True,
             "attributes": [{"spec_id": attr["model"], "value": "b"}, {"spec_id": attr["speed"], "value": "42"}]},
            {"type": "rectangle", "label_id": ctx["sign"], "frame": frame, "points": [0.1, 0.2, 0.3, 0.4],
             "source": "auto", "score": 0.75},
            {"type": "polygon", "label_id": car, "frame": frame, "points": [0, 0, 10, 0, 10, 10, 0, 10.5], "group": 3},
            {"type": "polyline", "label_id": car, "frame": frame, "points": [1, 1, 5, 5, 9, 1]},
            {"type": "points", "label_id": car, "frame": frame, "points": [3, 4]},
            {"type": "ellipse", "label_id": car, "frame": frame, "points": [20, 20, 30, 15]},
            {"type": "cuboid", "label_id": car, "frame": frame, "points": [float(i) for i in range(16)]},
            {"type": "mask", "label_id": car, "frame": frame, "points": [0, 3, 2, 3, *mask_box]},
            {"type": "skeleton", "label_id": ctx["person"], "frame": frame, "points": [], "elements": [
                {"type": "points", "label_id": nodes["head"], "frame": frame, "points": [10, 10]},
                {"type": "points", "label_id": nodes["hand"], "frame": frame, "points": [50, 50], "outside": True},
            ]},
        ],
        "tracks": [
            {"label_id": car, "frame": frame, "attributes": [{"spec_id": attr["model"], "value": "a"}], "shapes": [
                {"type": "rectangle", "frame": frame, "points": [0, 0, 10, 10],
                 "attributes": [{"spec_id": attr["parked"], "value": "true"}]},
                {"type": "rectangle", "frame": frame + 2, "points": [10, 10, 20, 20], "rotation": 15},
                {"type": "rectangle", "frame": frame + 3, "points": [10, 10, 20, 20], "outside": True},
            ]},
            {"label_id": car, "frame": frame, "shapes": [
                {"type": "polygon", "frame": frame, "points": [0, 0, 4, 0, 4, 4]},
                {"type": "polygon", "frame": frame + 1, "points": [1, 1, 5, 1, 5, 5, 1, 5]},
            ]},
            {"label_id": car, "frame": frame, "shapes": [
                {"type": "points", "frame": frame, "points": [1, 1, 2, 2]},
            ]},
            {"label_id": car, "frame": frame, "shapes": [{"type": "ellipse", "frame": frame, "points": [5, 5, 9, 3]}]},
            {"label_id": ctx["person"], "frame": frame, "shapes": [
                {"type": "skeleton", "frame": frame, "points": []},
            ], "elements": [
                {"label_id": nodes["head"], "frame": frame, "shapes": [{"type": "points", "frame": frame, "points": [1, 1]}]},
                {"label_id": nodes["hand"], "frame": frame, "shapes": [{"type": "points", "frame": frame, "points": [2, 2]}]},
            ]},
        ],
    }  # fmt: skip


SHAPE_DEFAULTS = {
    "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "group": 0,
    "source": "manual", "score": 1.0, "attributes": [], "elements": [],
}  # fmt: skip
TRACKED_DEFAULTS = {
    "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "attributes": [],
}  # fmt: skip


def normalized(data: dict[str, Any]) -> dict[str, Any]:
    """The body with ids dropped and CVAT's defaults filled, numbers as floats."""

    def shape(s: dict[str, Any], frame: int | None = None) -> dict[str, Any]:
        out = {**SHAPE_DEFAULTS, **s}
        out.pop("id", None)
        out["points"] = [float(p) for p in out["points"]]
        out["rotation"] = float(out["rotation"])
        out["score"] = float(out["score"])
        out["elements"] = [shape(e, out["frame"]) for e in out["elements"]]
        return out

    def tracked(s: dict[str, Any]) -> dict[str, Any]:
        out = {**TRACKED_DEFAULTS, **s}
        out.pop("id", None)
        out["points"] = [float(p) for p in out["points"]]
        out["rotation"] = float(out["rotation"])
        return out

    def track(t: dict[str, Any]) -> dict[str, Any]:
        out = {"group": 0, "source": "manual", "attributes": [], "elements": [], **t}
        out.pop("id", None)
        out["shapes"] = sorted((tracked(s) for s in out["shapes"]), key=lambda s: s["frame"])
        out["elements"] = [track(e) for e in out["elements"]]
        return out

    def tag(t: dict[str, Any]) -> dict[str, Any]:
        out = {"group": 0, "source": "manual", "attributes": [], **t}
        out.pop("id", None)
        return out

    key = repr
    return {
        "tags": sorted((tag(t) for t in data["tags"]), key=key),
        "shapes": sorted((shape(s) for s in data["shapes"]), key=key),
        "tracks": sorted((track(t) for t in data["tracks"]), key=key),
    }


def all_ids(data: dict[str, Any]) -> list[int]:
    ids = [o["id"] for kind in ("tags", "shapes", "tracks") for o in data[kind]]
    ids += [e["id"] for s in data["shapes"] for e in s["elements"]]
    ids += [k["id"] for t in data["tracks"] for k in t["shapes"]]
    return ids


def test_every_kind_round_trips_through_put_and_get(
    admin: httpx.Client, ctx: dict[str, Any]
) -> None:
    job = ctx["jobs"][0]
    body = every_kind(ctx)
    put = admin.put(f"/api/jobs/{job}/annotations/", json=body)
    assert put.status_code == 200, put.text
    got = admin.get(f"/api/jobs/{job}/annotations/").json()
    assert normalized(got) == normalized(body)
    assert normalized(put.json()) == normalized(body)
    ids = all_ids(got)
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)
    assert got["intervals"] == []


def test_put_of_what_get_returned_writes_nothing(admin: httpx.Client, ctx: dict[str, Any]) -> None:
    job = ctx["jobs"][0]
    admin.put(f"/api/jobs/{job}/annotations/", json=every_kind(ctx))
    before = admin.get(f"/api/jobs/{job}/annotations/").json()
    history = admin.get(f"/api/jobs/{job}/history", params={"page_size": "all"}).json()["count"]
    again = admin.put(f"/api/jobs/{job}/annotations/", json=before)
    assert again.status_code == 200
    after = admin.get(f"/api/jobs/{job}/annotations/").json()
    assert after == before
    assert (
        admin.get(f"/api/jobs/{job}/history", params={"page_size": "all"}).json()["count"]
        == history
    )


def test_patch_create_update_delete(admin: httpx.Client, ctx: dict[str, Any]) -> None:
    job = ctx["jobs"][1]
    admin.delete(f"/api/jobs/{job}/annotations/")
    box = {"type": "rectangle", "label_id": ctx["car"], "frame": 6, "points": [1, 1, 2, 2]}
    created = admin.patch(
        f"/api/jobs/{job}/annotations/", params={"action": "create"},
        json={"shapes": [box, {**box, "frame": 7}]},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    first, second = created.json()["shapes"]
    moved = {**first, "points": [5.0, 5.0, 9.5, 9.5]}
    updated = admin.patch(
        f"/api/jobs/{job}/annotations/", params={"action": "update"}, json={"shapes": [moved]}
    )
    assert updated.status_code == 200
    state = admin.get(f"/api/jobs/{job}/annotations/").json()
    assert {s["id"]: s["points"] for s in state["shapes"]} == {
        first["id"]: [5.0, 5.0, 9.5, 9.5],
        second["id"]: [1.0, 1.0, 2.0, 2.0],
    }
    deleted = admin.patch(
        f"/api/jobs/{job}/annotations/", params={"action": "delete"}, json={"shapes": [second]}
    )
    assert deleted.status_code == 200
    assert [s["id"] for s in admin.get(f"/api/jobs/{job}/annotations/").json()["shapes"]] == [
        first["id"]
    ]
    refused = admin.patch(
        f"/api/jobs/{job}/annotations/", params={"action": "create"}, json={"shapes": [first]}
    )
    assert refused.status_code == 400 and "shapes[0].id" in refused.json()
    unknown = admin.patch(
        f"/api/jobs/{job}/annotations/", params={"action": "update"},
        json={"shapes": [{**first, "id": 999999}]},
    )  # fmt: skip
    assert unknown.status_code == 404
    assert (
        admin.patch(
            f"/api/jobs/{job}/annotations/", params={"action": "merge"}, json={}
        ).status_code
        == 400
    )


def bad(ctx: dict[str, Any], **change: Any) -> dict[str, Any]:
    shape = {
        "type": "rectangle",
        "label_id": ctx["car"],
        "frame": 1,
        "points": [0, 0, 1, 1],
        **change,
    }
    return {"shapes": [shape]}


BAD_CASES: list[tuple[str, Any, str]] = [
    ("unknown label", lambda c: bad(c, label_id=999999), "shapes[0].label_id"),
    ("type not allowed", lambda c: bad(c, label_id=c["sign"], type="polygon", points=[0, 0, 1, 0, 1, 1]), "shapes[0].type"),
    ("unknown type", lambda c: bad(c, type="blob"), "shapes[0].type"),
    ("rectangle points", lambda c: bad(c, points=[0, 0, 1]), "shapes[0].points"),
    ("polygon points", lambda c: bad(c, type="polygon", points=[0, 0, 1, 1]), "shapes[0].points"),
    ("odd points", lambda c: bad(c, type="polyline", points=[0, 0, 1, 1, 2]), "shapes[0].points"),
    ("cuboid points", lambda c: bad(c, type="cuboid", points=[0] * 8), "shapes[0].points"),
    ("frame outside job", lambda c: bad(c, frame=7), "shapes[0].frame"),
    ("negative frame", lambda c: bad(c, frame=-1), "shapes[0].frame"),
    ("rotation", lambda c: bad(c, rotation=400), "shapes[0].rotation"),
    ("score", lambda c: bad(c, score=1.5), "shapes[0].score"),
    ("source", lambda c: bad(c, source="robot"), "shapes[0].source"),
    ("group", lambda c: bad(c, group=-2), "shapes[0].group"),
    ("select value", lambda c: bad(c, attributes=[{"spec_id": c["attr"]["model"], "value": "z"}]), "shapes[0].attributes[0].value"),
    ("number value", lambda c: bad(c, attributes=[{"spec_id": c["attr"]["speed"], "value": "101"}]), "shapes[0].attributes[0].value"),
    ("checkbox value", lambda c: bad(c, attributes=[{"spec_id": c["attr"]["parked"], "value": "maybe"}]), "shapes[0].attributes[0].value"),
    ("foreign attribute", lambda c: bad(c, label_id=c["sign"], attributes=[{"spec_id": c["attr"]["model"], "value": "a"}]), "shapes[0].attributes[0].spec_id"),
    ("mask rle", lambda c: bad(c, type="mask", points=[0, 3, 2, 10, 20, 13, 21]), "shapes[0].points"),
    ("mask box", lambda c: bad(c, type="mask", points=[0, 3, 2, 13, 20, 10, 21]), "shapes[0].points"),
    ("skeleton without elements", lambda c: bad(c, label_id=c["person"], type="skeleton", points=[]), "shapes[0].elements"),
    ("skeleton foreign node", lambda c: bad(c, label_id=c["person"], type="skeleton", points=[], elements=[
        {"type": "points", "label_id": c["car"], "frame": 1, "points": [1, 1]}]), "shapes[0].elements[0].label_id"),
    ("elements on a box", lambda c: bad(c, elements=[{"type": "points", "label_id": c["car"], "frame": 1, "points": [1, 1]}]), "shapes[0].elements"),
    ("points type", lambda c: bad(c, points=["a", 1, 2, 3]), "shapes[0].points[0]"),
    ("missing frame", lambda c: {"shapes": [{"type": "rectangle", "label_id": c["car"], "points": [0, 0, 1, 1]}]}, "shapes[0].frame"),
    ("tag label", lambda c: {"tags": [{"label_id": c["sign"], "frame": 1}]}, "tags[0].label_id"),
    ("empty track", lambda c: {"tracks": [{"label_id": c["car"], "frame": 1, "shapes": []}]}, "tracks[0].shapes"),
    ("track duplicate frame", lambda c: {"tracks": [{"label_id": c["car"], "frame": 1, "shapes": [
        {"type": "rectangle", "frame": 1, "points": [0, 0, 1, 1]}, {"type": "rectangle", "frame": 1, "points": [0, 0, 1, 1]}]}]},
     "tracks[0].shapes[1].frame"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "make", "path"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_annotations_are_400_and_change_nothing(
    admin: httpx.Client, ctx: dict[str, Any], case: str, make: Any, path: str
) -> None:
    job = ctx["jobs"][0]
    before = admin.get(f"/api/jobs/{job}/annotations/").json()
    for method, params in (("put", {}), ("patch", {"action": "create"})):
        response = admin.request(
            method.upper(), f"/api/jobs/{job}/annotations/", params=params, json=make(ctx)
        )
        assert response.status_code == 400, (method, response.text)
        assert path in response.json(), response.json()
    assert admin.get(f"/api/jobs/{job}/annotations/").json() == before


def test_non_finite_numbers_are_refused(admin: httpx.Client, ctx: dict[str, Any]) -> None:
    job = ctx["jobs"][0]
    car = ctx["car"]
    raw = f'{{"shapes":[{{"type":"rectangle","label_id":{car},"frame":1,"points":[0,0,NaN,1]}}]}}'
    response = admin.put(
        f"/api/jobs/{job}/annotations/", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_task_level_writes_split_to_jobs_and_reads_merge(
    admin: httpx.Client, ctx: dict[str, Any]
) -> None:
    task_id = ctx["task"]["id"]
    first, second = ctx["jobs"]
    box = {"type": "rectangle", "label_id": ctx["car"], "points": [1, 1, 2, 2]}
    track = {"label_id": ctx["car"], "frame": 3, "shapes": [
        {"type": "rectangle", "frame": 3, "points": [0, 0, 10, 10]},
        {"type": "rectangle", "frame": 7, "points": [40, 40, 50, 50]},
    ]}  # fmt: skip
    body = {"shapes": [{**box, "frame": 2}, {**box, "frame": 8}], "tracks": [track]}
    put = admin.put(f"/api/tasks/{task_id}/annotations/", json=body)
    assert put.status_code == 200, put.text
    one = admin.get(f"/api/jobs/{first}/annotations/").json()
    two = admin.get(f"/api/jobs/{second}/annotations/").json()
    assert [s["frame"] for s in one["shapes"]] == [2]
    assert [s["frame"] for s in two["shapes"]] == [8]
    assert [k["frame"] for k in one["tracks"][0]["shapes"]] == [3]
    # The second job's part starts with the track interpolated at its first frame (5).
    assert [k["frame"] for k in two["tracks"][0]["shapes"]] == [5, 7]
    assert two["tracks"][0]["shapes"][0]["points"] == [20.0, 20.0, 30.0, 30.0]
    merged = admin.get(f"/api/tasks/{task_id}/annotations/").json()
    assert sorted(s["frame"] for s in merged["shapes"]) == [2, 8]
    assert len(merged["tracks"]) == 2
    assert admin.delete(f"/api/tasks/{task_id}/annotations/").status_code == 204
    empty = admin.get(f"/api/tasks/{task_id}/annotations/").json()
    assert empty["shapes"] == empty["tracks"] == empty["tags"] == []


def test_old_export_through_annotations_is_gone(admin: httpx.Client, ctx: dict[str, Any]) -> None:
    job = ctx["jobs"][0]
    response = admin.get(f"/api/jobs/{job}/annotations/", params={"format": "CVAT for images 1.1"})
    assert response.status_code == 410


def test_history_lists_each_edit_with_actor_and_objects(
    admin: httpx.Client, ctx: dict[str, Any]
) -> None:
    job = ctx["jobs"][1]
    admin.delete(f"/api/jobs/{job}/annotations/")
    box = {"type": "rectangle", "label_id": ctx["car"], "frame": 6, "points": [1, 1, 2, 2]}
    admin.patch(
        f"/api/jobs/{job}/annotations/", params={"action": "create"}, json={"shapes": [box]}
    )
    created = admin.patch(
        f"/api/jobs/{job}/annotations/", params={"action": "create"}, json={"shapes": [box]},
        headers={"Idempotency-Key": "history-create"},
    ).json()  # fmt: skip
    history = admin.get(f"/api/jobs/{job}/history", params={"page_size": "all"}).json()
    last = history["results"][-1]
    assert last["type"] == "AnnotationsCreated"
    assert last["actor"]["username"] == "admin"
    assert last["objects"]["shapes"] == [created["shapes"][0]["id"]]
    assert last["command_id"] == "history-create"
    versions = [entry["version"] for entry in history["results"]]
    assert versions == list(range(1, len(versions) + 1))
    assert history["results"][0]["type"] == "Created"
    paged = admin.get(f"/api/jobs/{job}/history", params={"page_size": 1, "page": 2}).json()
    assert paged["results"][0]["version"] == 2 and paged["next"] and paged["previous"]


def test_copy_is_unchanged_by_later_edits(admin: httpx.Client, ctx: dict[str, Any]) -> None:
    """A GET's answer is a snapshot: edits after it do not leak into an earlier version."""
    job = ctx["jobs"][1]
    admin.delete(f"/api/jobs/{job}/annotations/")
    box = {"type": "rectangle", "label_id": ctx["car"], "frame": 6, "points": [1, 1, 2, 2]}
    admin.patch(
        f"/api/jobs/{job}/annotations/", params={"action": "create"}, json={"shapes": [box]}
    )
    first = admin.get(f"/api/jobs/{job}/annotations/").json()
    kept = copy.deepcopy(first)
    shape = {**first["shapes"][0], "points": [3, 3, 4, 4]}
    admin.patch(
        f"/api/jobs/{job}/annotations/", params={"action": "update"}, json={"shapes": [shape]}
    )
    old = admin.get(f"/api/jobs/{job}/annotations/", params={"at_version": first["version"]}).json()
    assert old["shapes"] == kept["shapes"]
    assert old["version"] == kept["version"]


def test_unknown_job_is_404(admin: httpx.Client, tmp_path: Path) -> None:
    assert admin.get("/api/jobs/987654/annotations/").status_code == 404
    assert admin.put("/api/jobs/987654/annotations/", json={}).status_code == 404


def test_label_patch_and_delete_take_annotations_along(admin: httpx.Client, tmp_path: Path) -> None:
    task = upload_task(
        admin, tmp_path, ["a.png", "b.png"],
        {"name": "labels", "labels": [{"name": "keep"}, {"name": "drop"}]},
    )  # fmt: skip
    labels = {
        label["name"]: label["id"]
        for label in admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"]
    }
    job = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]["id"]
    boxes = [
        {"type": "rectangle", "label_id": labels[name], "frame": 0, "points": [0, 0, 1, 1]}
        for name in ("keep", "drop")
    ]
    admin.put(f"/api/jobs/{job}/annotations/", json={"shapes": boxes})
    renamed = admin.patch(
        f"/api/labels/{labels['keep']}", json={"name": "kept", "color": "#112233"}
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["color"]) == ("kept", "#112233")
    assert admin.delete(f"/api/labels/{labels['drop']}").status_code == 204
    remaining = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"]
    assert [label["name"] for label in remaining] == ["kept"]
    shapes = admin.get(f"/api/jobs/{job}/annotations/").json()["shapes"]
    assert [s["label_id"] for s in shapes] == [labels["keep"]]
    history = admin.get(f"/api/jobs/{job}/history", params={"page_size": "all"}).json()
    assert history["results"][-1]["type"] == "AnnotationsDeleted"
    assert admin.delete(f"/api/labels/{labels['drop']}").status_code == 404


def test_a_big_put_is_saved_and_read_back(admin: httpx.Client, ctx: dict[str, Any]) -> None:
    """Over 500 kB in one event: psycopg's pipeline mode used to hang on such an insert."""
    job = ctx["jobs"][1]
    shapes = [
        {"type": "polygon", "label_id": ctx["car"], "frame": 5 + i % 5,
         "points": [i + 0.5, 1.25, i + 10.5, 2.5, i + 5.125, 20.0, i + 1.0, 15.75]}
        for i in range(3000)
    ]  # fmt: skip
    put = admin.put(f"/api/jobs/{job}/annotations/", json={"shapes": shapes}, timeout=60)
    assert put.status_code == 200, put.text
    got = admin.get(f"/api/jobs/{job}/annotations/").json()
    assert sorted(s["points"] for s in got["shapes"]) == sorted(
        [float(p) for p in s["points"]] for s in shapes
    )
    assert admin.delete(f"/api/jobs/{job}/annotations/").status_code == 204
