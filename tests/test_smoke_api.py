from __future__ import annotations

import httpx

from tests.conftest import register
from tests.live_server import LiveServer


def test_about_names_the_server_and_version(server: LiveServer) -> None:
    about = httpx.get(f"{server.url}/api/server/about").json()
    assert about["name"] == "Palimpsest"
    assert about["version"] == "2.80.0"
    assert set(about) == {"name", "description", "version", "logo_url", "subtitle"}


def test_project_create_list_retrieve(admin: httpx.Client) -> None:
    created = admin.post(
        "/api/projects",
        json={
            "name": "roads",
            "labels": [
                {
                    "name": "car",
                    "attributes": [
                        {
                            "name": "color",
                            "mutable": False,
                            "input_type": "select",
                            "values": ["red", "blue"],
                        }
                    ],
                }
            ],
        },
    )
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["name"] == "roads"
    assert project["owner"]["username"] == "admin"
    listed = admin.get("/api/projects").json()
    assert [p["id"] for p in listed["results"]] == [project["id"]]
    labels = admin.get("/api/labels", params={"project_id": project["id"]}).json()["results"]
    assert labels[0]["name"] == "car"
    assert labels[0]["attributes"][0]["default_value"] == "red"


def test_other_user_cannot_delete_a_project(server: LiveServer, admin: httpx.Client) -> None:
    project = admin.post("/api/projects", json={"name": "mine"}).json()
    with register(server, "mallory") as mallory:
        hidden = mallory.delete(f"/api/projects/{project['id']}")
        mallory_id = mallory.get("/api/users/self").json()["id"]
        admin.patch(f"/api/projects/{project['id']}", json={"assignee_id": mallory_id})
        refused = mallory.delete(f"/api/projects/{project['id']}")
    assert hidden.status_code == 404  # not hers, not assigned: she cannot even probe it
    assert refused.status_code == 403  # assigned, she sees it, but only its owner deletes it
    assert admin.get(f"/api/projects/{project['id']}").status_code == 200


def test_event_envelope_schema_is_published(server: LiveServer) -> None:
    schema = httpx.get(f"{server.url}/api/events/schema").json()
    envelope = schema["$defs"]["Envelope"]
    assert {"notification_id", "type", "stream_version", "actor", "payload"} <= set(
        envelope["properties"]
    )
