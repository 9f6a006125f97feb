"""Analytics and /api/events over HTTP, in real time: edits show up within seconds, client
events are validated, put on the log, exported as CSV and published to JetStream."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
from cvat_sdk import make_client, models

from projections.envelope import decode
from projections.relay import Relay
from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer
from tests.task_setup import upload_task


def eventually(probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Polls until `probe` returns something truthy (the projection follows the log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, "the analytics did not catch up"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def job(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    folder = tmp_path_factory.mktemp("frames")
    project = admin.post("/api/projects", json={"name": "stats", "labels": [{"name": "car"}]})
    assert project.status_code == 201, project.text
    task = upload_task(
        admin,
        folder,
        ["a.png", "b.png", "c.png"],
        {"name": "t", "project_id": project.json()["id"]},
    )
    job_id = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]["id"]
    label = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"][0]["id"]
    return {"project": project.json()["id"], "task": task["id"], "job": job_id, "label": label}


def now_iso(shift: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=shift)).isoformat().replace("+00:00", "Z")


def test_an_edit_over_rest_shows_in_the_analytics_within_seconds(
    admin: httpx.Client, job: dict[str, int]
) -> None:
    me = admin.get("/api/users/self").json()["id"]
    box = {"type": "rectangle", "label_id": job["label"], "frame": 0, "points": [1, 1, 5, 5]}
    track = {
        "label_id": job["label"],
        "frame": 0,
        "shapes": [{"type": "rectangle", "frame": 0, "points": [1, 1, 5, 5]}],
    }
    answer = admin.patch(
        f"/api/jobs/{job['job']}/annotations",
        params={"action": "create"},
        json={"shapes": [box, box], "tracks": [track]},
    )
    assert answer.status_code == 200, answer.text
    figures = eventually(
        lambda: (r := admin.get(f"/api/analytics/jobs/{job['job']}").json())["created"] == 3 and r
    )
    today = datetime.now(UTC).date().isoformat()
    assert figures["days"][-1]["date"] == today
    assert figures["total_object_count"] == 2 + 3  # the track is visible on all 3 frames
    assert figures["users"][0]["user_id"] == me
    for target in ("task", "project"):
        got = admin.get(f"/api/analytics/{target}s/{job[target]}").json()
        assert got["created"] == 3 and got["total_object_count"] == 5
    mine = admin.get(f"/api/analytics/users/{me}", params={"from": today, "to": today}).json()
    assert mine["created"] >= 3
    assert (
        admin.get(f"/api/analytics/jobs/{job['job']}", params={"to": "2000-01-01"}).json()["days"]
        == []
    )


def test_cvat_analytics_report_shape_and_request_flow(
    admin: httpx.Client, job: dict[str, int]
) -> None:
    report = admin.get("/api/analytics/reports", params={"job_id": job["job"]})
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["target"] == "job" and body["job_id"] == job["job"]
    names = [metric["name"] for metric in body["statistics"]]
    assert names == [
        "objects",
        "annotation_speed",
        "annotation_time",
        "total_object_count",
        "total_annotation_speed",
    ]
    objects = body["statistics"][0]["data_series"]
    assert set(objects) == {"created", "updated", "deleted"}
    assert all(set(point) == {"value", "date"} for point in objects["created"])
    started = admin.post("/api/analytics/reports", json={"task_id": job["task"]})
    assert started.status_code == 202, started.text
    done = admin.post("/api/analytics/reports", params={"rq_id": started.json()["rq_id"]})
    assert done.status_code == 201 and done.json()["task_id"] == job["task"]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/analytics/jobs/999999", {}, 404),
        ("/api/analytics/jobs/{job}", {"from": "yesterday"}, 400),
        ("/api/analytics/jobs/{job}", {"from": "2026-02-01", "to": "2026-01-01"}, 400),
        ("/api/analytics/reports", {}, 400),
        ("/api/analytics/reports", {"job_id": "{job}", "task_id": "{task}"}, 400),
        ("/api/analytics/reports", {"job_id": "x"}, 400),
    ],
)
def test_analytics_refuses_bad_requests(
    admin: httpx.Client, job: dict[str, int], path: str, params: dict[str, str], status: int
) -> None:
    filled = {key: value.format(**job) for key, value in params.items()}
    answer = admin.get(path.format(**job), params=filled)
    assert answer.status_code == status, answer.text
    assert answer.json()


def test_analytics_permissions(
    server: LiveServer, admin: httpx.Client, job: dict[str, int]
) -> None:
    admin_id = admin.get("/api/users/self").json()["id"]
    assert httpx.get(f"{server.url}/api/analytics/jobs/{job['job']}").status_code == 401
    assert httpx.get(f"{server.url}/api/analytics/reports").status_code == 401
    assert httpx.post(f"{server.url}/api/events", json={}).status_code == 401
    with register(server, "analyst") as other:
        mine = other.get("/api/users/self").json()["id"]
        assert other.get(f"/api/analytics/users/{admin_id}").status_code == 403
        assert other.get(f"/api/analytics/users/{mine}").status_code == 200
        assert admin.get(f"/api/analytics/users/{mine}").status_code == 200
        bad = other.post("/api/analytics/reports", params={"rq_id": "nonsense"})
        assert bad.status_code == 400


def client_body(*events: dict[str, Any], sent: str | None = None) -> dict[str, Any]:
    return {"events": list(events), "previous_event": None, "timestamp": sent or now_iso()}


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},  # no timestamp
        {"events": {}, "timestamp": "2026-01-01T00:00:00Z"},
        {"events": [{"scope": "change:frame"}], "timestamp": "2026-01-01T00:00:00Z"},
        {"events": [{"scope": "create:task", "timestamp": "2026-01-01T00:00:00Z"}],
         "timestamp": "2026-01-01T00:00:00Z"},
        {"events": [{"scope": "change:frame", "timestamp": "2026-01-01T00:00:00Z",
                     "payload": "{not json"}], "timestamp": "2026-01-01T00:00:00Z"},
        {"events": [{"scope": "change:frame", "timestamp": "2026-01-01T00:00:00Z",
                     "job_id": "seven"}], "timestamp": "2026-01-01T00:00:00Z"},
        {"events": [{"scope": "change:frame", "timestamp": "2026-01-01T00:00:00Z",
                     "job_id": 2**40}], "timestamp": "2026-01-01T00:00:00Z"},
        {"events": [{"scope": "change:frame", "timestamp": "2026-01-01T00:00:00Z",
                     "obj_name": "a\u0000b"}], "timestamp": "2026-01-01T00:00:00Z"},
        {"events": [{"scope": "change:frame", "timestamp": "2026-01-01T00:00:00Z",
                     "duration": -1}], "timestamp": "2026-01-01T00:00:00Z"},
        {"events": [{"scope": "change:frame", "timestamp": "yesterday"}],
         "timestamp": "2026-01-01T00:00:00Z"},
    ],
)  # fmt: skip
def test_posting_bad_client_events_is_refused_and_writes_nothing(
    server: LiveServer, admin: httpx.Client, body: dict[str, Any]
) -> None:
    assert server.runtime is not None
    before = server.runtime.store.recorder.max_notification_id()
    answer = admin.post("/api/events", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()
    assert server.runtime.store.recorder.max_notification_id() == before


def test_posted_events_are_corrected_in_time_stored_and_exported(
    server: LiveServer, admin: httpx.Client, job: dict[str, int]
) -> None:
    # The client's clock runs an hour behind: its events move onto the server's clock.
    behind = now_iso(-3600)
    event = {
        "scope": "change:frame",
        "timestamp": behind,
        "job_id": job["job"],
        "obj_val": "2",
        "payload": '{"from": 1, "to": 2}',
        "user_id": 12345,  # the server says who posted, whatever the client claims
    }
    answer = admin.post("/api/events", json=client_body(event, sent=behind))
    assert answer.status_code == 201, answer.text
    (stored,) = answer.json()["events"]
    assert stored["user_id"] == admin.get("/api/users/self").json()["id"]
    assert stored["user_name"] == "admin" and stored["source"] == "client"
    moved = datetime.fromisoformat(stored["timestamp"])
    assert abs((moved - datetime.now(UTC)).total_seconds()) < 60

    def exported() -> list[dict[str, str]]:
        started = admin.get("/api/events", params={"job_id": job["job"]})
        assert started.status_code == 202, started.text
        query_id = started.json()["query_id"]
        ready = admin.get("/api/events", params={"job_id": job["job"], "query_id": query_id})
        assert ready.status_code == 201
        download = admin.get(
            "/api/events",
            params={"job_id": job["job"], "query_id": query_id, "action": "download"},
        )
        assert download.status_code == 200 and download.headers["content-type"].startswith(
            "text/csv"
        )
        return list(csv.DictReader(io.StringIO(download.text)))

    rows = eventually(lambda: [r for r in exported() if r["scope"] == "change:frame"])
    assert rows[0]["obj_val"] == "2" and rows[0]["source"] == "client"
    assert rows[0]["payload"] == '{"from": 1, "to": 2}'
    all_rows = exported()
    assert any(r["scope"] == "create:job" and r["source"] == "server" for r in all_rows)
    assert admin.get("/api/events", params={"from": "soon"}).status_code == 400
    assert admin.get("/api/events", params={"action": "delete"}).status_code == 400


def test_non_admins_export_only_their_own_events(server: LiveServer) -> None:
    with register(server, "exporter") as user:
        me = user.get("/api/users/self").json()["id"]
        assert user.get("/api/events", params={"user_id": me + 1000}).status_code == 400
        event = {"scope": "load:job", "timestamp": now_iso()}
        assert user.post("/api/events", json=client_body(event)).status_code == 201

        def own_rows() -> list[dict[str, str]]:
            query = {"query_id": "q", "action": "download"}
            text = user.get("/api/events", params=query).text
            return list(csv.DictReader(io.StringIO(text)))

        rows = eventually(own_rows)
        assert {row["user_id"] for row in rows} == {str(me)}


def test_posted_events_reach_jetstream(
    server: LiveServer, admin: httpx.Client, nats_url: str
) -> None:
    assert server.runtime is not None
    runtime = server.runtime
    event = {"scope": "click:element", "timestamp": now_iso(), "obj_name": "jetstream-probe"}
    assert admin.post("/api/events", json=client_body(event)).status_code == 201
    last = runtime.store.recorder.max_notification_id()

    async def scenario() -> list[Any]:
        relay = Relay(
            runtime.store,
            runtime.pool,
            nats_url,
            stream="ANALYTICS_TEST",
            subject_prefix="analytics-test",
            poll_interval=0.02,
            lock_retry=0.05,
            lock_key=7319001,
        )
        task = asyncio.create_task(relay.run())
        try:
            deadline = time.monotonic() + 10
            while relay.position < last:
                assert time.monotonic() < deadline, "the relay did not publish the log"
                await asyncio.sleep(0.02)
            await relay.stop()
            await task
            nc = await nats.connect(nats_url)
            try:
                sub = await nc.jetstream().subscribe(
                    "analytics-test._._._._.ClientEventsPosted", stream="ANALYTICS_TEST"
                )
                messages = []
                while True:
                    try:
                        messages.append(await sub.next_msg(timeout=1))
                    except nats.errors.TimeoutError:
                        return messages
            finally:
                await nc.jetstream().delete_stream("ANALYTICS_TEST")
                await nc.close()
        finally:
            await relay.stop()

    messages = asyncio.run(scenario())
    envelopes = [decode(message.data) for message in messages]
    posted = [e for e in envelopes if e.payload["events"][0].get("obj_name") == "jetstream-probe"]
    assert len(posted) == 1
    assert posted[0].type == "ClientEventBatch.ClientEventsPosted"
    assert posted[0].payload["events"][0]["scope"] == "click:element"


def test_cvat_sdk_posts_client_events(server: LiveServer, job: dict[str, int]) -> None:
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as client:
        sent = datetime.now(UTC)
        event = models.EventRequest(
            scope="load:job", timestamp=sent, job_id=job["job"], duration=120, payload="{}"
        )
        echoed, response = client.api_client.events_api.create(
            models.ClientEventsRequest(events=[event], timestamp=sent)
        )
    assert response.status == 201
    assert echoed.events[0].scope == "load:job" and echoed.events[0].job_id == job["job"]
    assert echoed.events[0].user_name == "admin"


def test_times_without_a_zone_are_taken_as_utc(admin: httpx.Client) -> None:
    naive = datetime.now(UTC).replace(tzinfo=None).isoformat()
    event = {"scope": "zoom:image", "timestamp": naive}
    answer = admin.post("/api/events", json={"events": [event], "timestamp": naive})
    assert answer.status_code == 201, answer.text
    moved = datetime.fromisoformat(answer.json()["events"][0]["timestamp"])
    assert abs((moved - datetime.now(UTC)).total_seconds()) < 60
