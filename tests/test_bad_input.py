"""Bad input of each kind gets a 400 naming the field, and leaves the state as it was."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from tests.live_server import LiveServer


def state(server: LiveServer) -> tuple[int, int, int]:
    with psycopg.connect(server.database_url) as conn:
        events = conn.execute("SELECT count(*) FROM palimpsest_events").fetchone()[0]
        projects = conn.execute("SELECT count(*) FROM catalog_projects").fetchone()[0]
        tasks = conn.execute("SELECT count(*) FROM catalog_tasks").fetchone()[0]
    return events, projects, tasks


def attribute(**fields: object) -> dict[str, object]:
    return {"name": "a", "mutable": False, "input_type": "select", "values": ["x"], **fields}


BAD_BODIES = [
    ({"labels": [{"name": "car"}]}, "name", "required"),
    ({"name": 5, "labels": [{"name": "car"}]}, "name", "Expected `str`"),
    ({"name": "  ", "labels": [{"name": "car"}]}, "name", "blank"),
    ({"name": "t"}, "labels", "Label set or project_id"),
    ({"name": "t", "labels": [{"name": "car"}], "project_id": 999}, "labels", "only one"),
    ({"name": "t", "project_id": 999}, "project_id", "does not exist"),
    (
        {
            "name": "t",
            "labels": [
                {"name": "a"},
                {"name": "b"},
                {"name": "c", "attributes": [attribute(values=[])]},
            ],
        },
        "labels[2].attributes[0].values",
        "a select attribute needs at least one value",
    ),
    (
        {
            "name": "t",
            "labels": [
                {
                    "name": "c",
                    "attributes": [
                        attribute(input_type="number", values=["0", "10", "1"], default_value="11")
                    ],
                }
            ],
        },
        "labels[0].attributes[0].default_value",
        "outside",
    ),
    (
        {
            "name": "t",
            "labels": [
                {
                    "name": "c",
                    "attributes": [attribute(input_type="number", values=["0", "x", "1"])],
                }
            ],
        },
        "labels[0].attributes[0].values",
        "three numbers",
    ),
    (
        {"name": "t", "labels": [{"name": "c", "attributes": [attribute(input_type="slider")]}]},
        "labels[0].attributes[0].input_type",
        "not one of",
    ),
    (
        {"name": "t", "labels": [{"name": "c", "attributes": [attribute(), attribute()]}]},
        "labels[0].attributes[1].name",
        "twice",
    ),
    ({"name": "t", "labels": [{"name": "c", "type": "blob"}]}, "labels[0].type", "not one of"),
    ({"name": "t", "labels": [{"name": "c", "color": "red"}]}, "labels[0].color", "color"),
    ({"name": "t", "labels": [{"name": "c"}, {"name": "c"}]}, "labels", "more than once"),
    (
        {"name": "t", "labels": [{"name": "c", "type": "skeleton"}]},
        "labels[0].sublabels",
        "sublabel",
    ),
    ({"name": "t", "labels": [{"name": "c"}], "segment_size": -1}, "segment_size", "greater"),
    ({"name": "t", "labels": [{"attributes": []}]}, "labels[0].name", "needs a name"),
]


@pytest.mark.parametrize(("body", "path", "reason"), BAD_BODIES)
def test_bad_task_bodies_are_400_with_the_field_path(
    server: LiveServer, admin: httpx.Client, body: dict[str, object], path: str, reason: str
) -> None:
    before = state(server)
    response = admin.post("/api/tasks", json=body)
    assert response.status_code == 400, response.text
    errors = response.json()
    assert path in errors, errors
    assert any(reason in message for message in errors[path]), errors
    assert state(server) == before


def test_malformed_json_is_400(server: LiveServer, admin: httpx.Client) -> None:
    before = state(server)
    response = admin.post(
        "/api/projects", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in str(response.json())
    assert state(server) == before


def test_bad_list_queries_are_400(admin: httpx.Client) -> None:
    assert admin.get("/api/tasks", params={"filter": "{nope"}).status_code == 400
    assert (
        admin.get("/api/tasks", params={"filter": '{"==":[{"var":"secret"},1]}'}).status_code == 400
    )
    assert admin.get("/api/tasks", params={"page": "0"}).status_code == 400
    assert admin.get("/api/tasks", params={"page_size": "x"}).status_code == 400
    assert admin.get("/api/tasks", params={"project_id": "abc"}).status_code == 400


def test_unknown_ids_are_404(admin: httpx.Client) -> None:
    for path in ("/api/tasks/9999", "/api/projects/9999", "/api/jobs/9999", "/api/users/9999"):
        response = admin.get(path)
        assert response.status_code == 404, path
        assert "detail" in response.json()
    assert admin.patch("/api/tasks/9999", json={"name": "x"}).status_code == 404
    assert admin.delete("/api/projects/9999").status_code == 404


def test_bad_patch_changes_nothing(server: LiveServer, admin: httpx.Client) -> None:
    project = admin.post("/api/projects", json={"name": "keep", "labels": [{"name": "car"}]}).json()
    before = state(server)
    response = admin.patch(
        f"/api/projects/{project['id']}",
        json={
            "name": "renamed",
            "labels": [{"name": "bike", "attributes": [attribute(values=[])]}],
        },
    )
    assert response.status_code == 400
    assert "labels[0].attributes[0].values" in response.json()
    assert state(server) == before
    assert admin.get(f"/api/projects/{project['id']}").json()["name"] == "keep"


def test_bad_upload_finish_body_is_400(server: LiveServer, admin: httpx.Client) -> None:
    task = admin.post("/api/tasks", json={"name": "up", "labels": [{"name": "c"}]}).json()
    url = f"/api/tasks/{task['id']}/data/"
    assert admin.post(url, headers={"Upload-Start": ""}).status_code == 202
    response = admin.post(url, headers={"Upload-Finish": ""}, json={"image_quality": 0})
    assert response.status_code == 400
    assert "image_quality" in response.json()
    response = admin.post(url, headers={"Upload-Finish": ""}, json={"sorting_method": "shuffle"})
    assert response.status_code == 400
    assert "sorting_method" in response.json()
