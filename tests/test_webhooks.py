"""Webhooks: CRUD and permissions, signed deliveries of chosen events, retries, ping,
redelivery, and edits that never wait on a receiver. A real HTTP receiver runs in a thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cvat_sdk import make_client, models

from projections.webhook_dispatch import Answer, Outgoing, WebhookDispatcher
from tests.conftest import register
from tests.live_server import ADMIN_PASSWORD, LiveServer, free_port
from tests.task_setup import upload_task


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server recording every POST; per path, a list of statuses to answer with in
    turn (then 200), an optional gate the answer waits on, and an optional answer body."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    answers: dict[str, bytes] = field(default_factory=dict)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    receiver.arrived.notify_all()
                gate = receiver.gates.get(self.path)
                if gate is not None:
                    gate.wait(timeout=60)
                planned = receiver.statuses.get(self.path) or [200]
                status = planned.pop(0) if len(planned) > 1 else planned[0]
                answer = receiver.answers.get(self.path, f"answered {status}".encode())
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, found: Callable[[list[Received]], bool], timeout: float = 30) -> None:
        with self.arrived:
            if not self.arrived.wait_for(lambda: found(self.received), timeout=timeout):
                raise AssertionError(f"the receiver never got that; it got {self.received}")

    def at(self, path: str) -> list[Received]:
        with self.arrived:
            return [r for r in self.received if r.path == path]

    def stop(self) -> None:
        for gate in self.gates.values():
            gate.set()
        if self.server is not None:
            self.server.shutdown()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def wait_until(probe: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("the condition never held")


def make_project(client: httpx.Client, name: str) -> int:
    response = client.post("/api/projects", json={"name": name, "labels": [{"name": "car"}]})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def make_webhook(client: httpx.Client, project_id: int, url: str, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/api/webhooks",
        json={
            "target_url": url,
            "type": "project",
            "project_id": project_id,
            "events": ["update:task"],
            **body,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(client: httpx.Client, webhook_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/webhooks/{webhook_id}/deliveries", params={"page_size": "all"})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def verify(secret: str, received: Received) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers["X-Signature-256"])


def test_signed_deliveries_of_chosen_events_only(
    admin: httpx.Client, database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    project_id = make_project(admin, "roads")
    hook = make_webhook(
        admin,
        project_id,
        receiver.url("/chosen"),
        events=["create:task", "update:task"],
        secret="s3cret",
        description="ci",
    )
    assert "secret" not in hook
    assert hook["events"] == ["create:task", "update:task"]
    assert hook["owner"]["username"] == "admin" and hook["project_id"] == project_id
    task = upload_task(admin, tmp_path, ["a.png"], {"name": "day 1", "project_id": project_id})
    job_id = admin.get("/api/jobs", params={"task_id": task["id"]}).json()["results"][0]["id"]
    assert admin.patch(f"/api/jobs/{job_id}", json={"state": "in progress"}).status_code == 200
    assert admin.patch(f"/api/tasks/{task['id']}", json={"name": "day 2"}).status_code == 200

    receiver.wait_for(
        lambda got: any(
            r.path == "/chosen" and r.payload.get("before_update") == {"name": "day 1"} for r in got
        )
    )
    got = receiver.at("/chosen")
    assert all(verify("s3cret", r) for r in got)
    assert not verify("another secret", got[0])
    assert {r.payload["event"] for r in got} <= {"create:task", "update:task"}
    created = next(r.payload for r in got if r.payload["event"] == "create:task")
    assert created["task"]["id"] == task["id"] and created["webhook_id"] == hook["id"]
    assert created["sender"]["username"] == "admin"
    renamed = next(r.payload for r in got if r.payload.get("before_update") == {"name": "day 1"})
    assert renamed["task"]["name"] == "day 2"
    assert list(renamed) == ["event", "task", "before_update", "sender", "webhook_id"]
    # The job update came before the rename in the log, and was planned for nobody.
    with psycopg.connect(database_url) as conn:
        planned = conn.execute(
            "SELECT DISTINCT event FROM webhook_outbox WHERE webhook_id = %s", (hook["id"],)
        ).fetchall()
    assert {row[0] for row in planned} == {"create:task", "update:task"}
    listed = wait_until(
        lambda: "last_status" in (doc := admin.get(f"/api/webhooks/{hook['id']}").json()) and doc
    )
    assert listed["last_status"] == 200 and "secret" not in listed


def test_failing_receiver_is_retried_and_history_shows_each_attempt(
    admin: httpx.Client, receiver: Receiver
) -> None:
    receiver.statuses["/flaky"] = [500, 200]
    project_id = make_project(admin, "flaky")
    task = admin.post("/api/tasks", json={"name": "t", "project_id": project_id}).json()
    hook = make_webhook(admin, project_id, receiver.url("/flaky"))
    assert admin.patch(f"/api/tasks/{task['id']}", json={"name": "t2"}).status_code == 200
    attempts = wait_until(lambda: len(got := deliveries(admin, hook["id"])) >= 2 and got)
    assert [(d["attempt"], d["status_code"]) for d in reversed(attempts)] == [
        (1, 500),
        (2, 200),
    ]
    assert attempts[1]["response"] == "answered 500"
    assert attempts[0]["request"] == attempts[1]["request"]
    assert attempts[0]["event"] == "update:task" and attempts[0]["changed_fields"] == "name"
    one = admin.get(f"/api/webhooks/{hook['id']}/deliveries/{attempts[1]['id']}")
    assert one.status_code == 200 and one.json()["status_code"] == 500
    assert len(receiver.at("/flaky")) == 2
    assert all("X-Signature-256" not in r.headers for r in receiver.at("/flaky"))  # no secret


def test_ping_and_redelivery(admin: httpx.Client, receiver: Receiver) -> None:
    project_id = make_project(admin, "pings")
    hook = make_webhook(admin, project_id, receiver.url("/ping"), secret="k")
    ping = admin.post(f"/api/webhooks/{hook['id']}/ping")
    assert ping.status_code == 200, ping.text
    delivery = ping.json()
    assert delivery["event"] == "ping" and delivery["status_code"] == 200
    assert delivery["request"]["webhook"]["id"] == hook["id"]
    assert "secret" not in delivery["request"]["webhook"]
    assert len(receiver.at("/ping")) == 1 and verify("k", receiver.at("/ping")[0])

    again = admin.post(f"/api/webhooks/{hook['id']}/deliveries/{delivery['id']}/redelivery")
    assert again.status_code == 200 and again.json() == {}
    receiver.wait_for(lambda got: len([r for r in got if r.path == "/ping"]) == 2)
    first, second = receiver.at("/ping")
    assert first.body == second.body
    redone = wait_until(lambda: [d for d in deliveries(admin, hook["id"]) if d["redelivery"]])
    assert redone[0]["event"] == "ping" and redone[0]["status_code"] == 200
    receiver.answers["/ping-big"] = b"x" * (100 * 1024)
    big = make_webhook(admin, project_id, receiver.url("/ping-big"))
    cut = admin.post(f"/api/webhooks/{big['id']}/ping").json()["response"]
    assert cut == "x" * (64 * 1024)  # the history keeps the start of a long answer
    missing = admin.post(f"/api/webhooks/{hook['id']}/deliveries/999999/redelivery")
    assert missing.status_code == 404


def test_an_edit_never_waits_on_a_slow_receiver(admin: httpx.Client, receiver: Receiver) -> None:
    gate = receiver.gates["/slow"] = threading.Event()
    project_id = make_project(admin, "slow")
    task = admin.post("/api/tasks", json={"name": "t", "project_id": project_id}).json()
    slow = make_webhook(admin, project_id, receiver.url("/slow"))
    fast = make_webhook(admin, project_id, receiver.url("/fast"))
    dead = make_webhook(admin, project_id, f"http://127.0.0.1:{free_port()}/down")
    assert admin.patch(f"/api/tasks/{task['id']}", json={"name": "one"}).status_code == 200
    receiver.wait_for(lambda got: any(r.path == "/slow" for r in got))
    # The receiver holds its answer; edits are answered, and other receivers served.
    assert admin.patch(f"/api/tasks/{task['id']}", json={"name": "two"}).status_code == 200
    receiver.wait_for(lambda got: len([r for r in got if r.path == "/fast"]) == 2)
    assert not gate.is_set() and deliveries(admin, slow["id"]) == []
    # A receiver that is down is recorded as such (and retried), holding up no one.
    down = wait_until(lambda: deliveries(admin, dead["id"]))
    assert down[-1]["status_code"] == 502 and down[-1]["attempt"] == 1
    gate.set()
    wait_until(lambda: len(deliveries(admin, slow["id"])) == 2)
    assert len(deliveries(admin, fast["id"])) == 2


def test_only_the_project_owner_or_an_admin_manages_webhooks(
    server: LiveServer, admin: httpx.Client, receiver: Receiver
) -> None:
    with register(server, "owen") as owen, register(server, "mallory") as mallory:
        project_id = make_project(owen, "private")
        hook = make_webhook(owen, project_id, receiver.url("/owned"), secret="x")
        url = f"/api/webhooks/{hook['id']}"
        assert mallory.get("/api/webhooks").json()["count"] == 0
        assert [w["id"] for w in owen.get("/api/webhooks").json()["results"]] == [hook["id"]]
        assert hook["id"] in [w["id"] for w in admin.get("/api/webhooks").json()["results"]]
        for method, path, body in [
            ("GET", url, None),
            ("PATCH", url, {"is_active": False}),
            ("PUT", url, {**hook, "type": "project", "events": ["update:task"]}),
            ("DELETE", url, None),
            ("POST", f"{url}/ping", None),
            ("GET", f"{url}/deliveries", None),
        ]:
            refused = mallory.request(method, path, json=body)
            assert refused.status_code == 403, (method, path, refused.text)
            assert "detail" in refused.json()
        theirs = mallory.post(
            "/api/webhooks",
            json={
                "target_url": receiver.url("/x"),
                "type": "project",
                "project_id": project_id,
                "events": ["update:task"],
            },
        )
        assert theirs.status_code == 403
        assert mallory.get("/api/webhooks/999999").status_code == 404
        assert owen.get(url).json()["is_active"] is True

        changed = admin.patch(url, json={"description": "by admin", "events": ["delete:task"]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["events"] == ["delete:task"] and "secret" not in changed.json()
        assert owen.delete(url).status_code == 204
        assert owen.get(url).status_code == 404


def test_bad_input_is_refused_and_changes_nothing(server: LiveServer, receiver: Receiver) -> None:
    with register(server, "bob") as bob:
        project_id = make_project(bob, "bad")
        good = {
            "target_url": receiver.url("/bad"),
            "type": "project",
            "project_id": project_id,
            "events": ["update:task"],
        }
        cases = [
            ({**good, "target_url": "ftp://example.com/x"}, "target_url"),
            ({**good, "target_url": "not a url"}, "target_url"),
            ({**good, "events": ["update:nothing"]}, "events"),
            ({**good, "events": []}, "events"),
            ({**good, "type": "server"}, "type"),
            ({**good, "type": "organization"}, "type"),
            ({**good, "content_type": "text/xml"}, "content_type"),
            ({**good, "project_id": 999999}, "project_id"),
            ({**good, "secret": "x" * 65}, "secret"),
            ({**good, "is_active": "yes"}, "is_active"),
            ({key: value for key, value in good.items() if key != "target_url"}, "target_url"),
        ]
        for body, named in cases:
            response = bob.post("/api/webhooks", json=body)
            assert response.status_code == 400, (body, response.text)
            assert named in response.json(), response.text
        assert bob.post("/api/webhooks", content=b"{not json").status_code == 400
        assert bob.get("/api/webhooks").json()["count"] == 0

        hook = make_webhook(bob, project_id, receiver.url("/bad"))
        moved = bob.patch(f"/api/webhooks/{hook['id']}", json={"project_id": project_id + 1})
        assert moved.status_code == 400 and "project_id" in moved.json()
        events = bob.get("/api/webhooks/events", params={"type": "project"}).json()
        assert events["webhook_type"] == "project"
        assert {"key": "update:job", "group": {"display_name": "Job"}} in events["events"]
        assert bob.get("/api/webhooks/events", params={"type": "nope"}).status_code == 400


def test_a_deletion_carries_the_last_state(admin: httpx.Client, receiver: Receiver) -> None:
    project_id = make_project(admin, "deletions")
    task = admin.post("/api/tasks", json={"name": "doomed", "project_id": project_id}).json()
    make_webhook(admin, project_id, receiver.url("/deleted"), events=["delete:task"])
    assert admin.delete(f"/api/tasks/{task['id']}").status_code == 204
    receiver.wait_for(lambda got: any(r.path == "/deleted" for r in got))
    (deleted,) = receiver.at("/deleted")
    assert deleted.payload["event"] == "delete:task"
    assert deleted.payload["task"]["id"] == task["id"]
    assert deleted.payload["task"]["name"] == "doomed"
    assert "before_update" not in deleted.payload


def test_one_instance_delivers_edits_made_on_any(
    server: LiveServer,
    admin: httpx.Client,
    database_url: str,
    receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    other = LiveServer(database_url, tmp_path_factory.mktemp("other")).start()
    try:
        with httpx.Client(base_url=other.url, auth=admin.auth, timeout=30) as elsewhere:
            project_id = make_project(elsewhere, "two servers")
            task = elsewhere.post("/api/tasks", json={"name": "0", "project_id": project_id})
            hook = make_webhook(elsewhere, project_id, receiver.url("/twice"))
            for number, client in enumerate([admin, elsewhere] * 3, start=1):
                path = f"/api/tasks/{task.json()['id']}"
                renamed = client.patch(path, json={"name": str(number)})
                assert renamed.status_code == 200
            receiver.wait_for(lambda got: len([r for r in got if r.path == "/twice"]) == 6)
            wait_until(lambda: len(deliveries(elsewhere, hook["id"])) == 6)
        with psycopg.connect(database_url) as conn:
            planned = conn.execute(
                "SELECT count(*) FROM webhook_outbox WHERE webhook_id = %s", (hook["id"],)
            ).fetchone()
        assert planned == (6,)
        befores = sorted(r.payload["before_update"]["name"] for r in receiver.at("/twice"))
        assert befores == ["0", "1", "2", "3", "4", "5"]
    finally:
        other.stop()


def test_cvat_sdk_manages_webhooks(server: LiveServer, receiver: Receiver) -> None:
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as client:
        project = client.projects.create(models.ProjectWriteRequest(name="sdk hooks"))
        api = client.api_client.webhooks_api
        made, _ = api.create(
            models.WebhookWriteRequest(
                target_url=receiver.url("/sdk"),
                type=models.WebhookType("project"),
                events=[models.EventsEnum("update:task"), models.EventsEnum("create:job")],
                project_id=project.id,
                secret="sdk-secret",
            )
        )
        assert made.project_id == project.id and made.is_active
        delivery, _ = api.create_ping(made.id)
        assert delivery.status_code == 200 and delivery.event == "ping"
        fetched, _ = api.retrieve(made.id)
        assert fetched.last_status == 200
        page, _ = api.list_deliveries(made.id)
        assert page.count == 1
        events, _ = api.retrieve_events(type="project")
        assert "update:job" in [event.key for event in events.events]
        updated, _ = api.partial_update(
            made.id, patched_webhook_write_request={"description": "from the sdk"}
        )
        assert updated.description == "from the sdk"
        api.destroy(made.id)


def test_an_inactive_webhook_is_sent_nothing(
    admin: httpx.Client, database_url: str, receiver: Receiver
) -> None:
    project_id = make_project(admin, "quiet")
    task = admin.post("/api/tasks", json={"name": "t", "project_id": project_id}).json()
    quiet = make_webhook(admin, project_id, receiver.url("/quiet"), is_active=False)
    loud = make_webhook(admin, project_id, receiver.url("/loud"))
    assert admin.patch(f"/api/tasks/{task['id']}", json={"name": "t2"}).status_code == 200
    receiver.wait_for(lambda got: any(r.path == "/loud" for r in got))
    with psycopg.connect(database_url) as conn:
        planned = conn.execute(
            "SELECT webhook_id FROM webhook_outbox WHERE webhook_id IN (%s, %s)",
            (quiet["id"], loud["id"]),
        ).fetchall()
    assert planned == [(loud["id"],)]
    assert receiver.at("/quiet") == []


def test_attempts_stop_after_the_last_one_with_growing_waits(
    server: LiveServer, admin: httpx.Client, database_url: str, receiver: Receiver
) -> None:
    """The retry bookkeeping, on a dispatcher that is not running (so it sends nothing)."""
    assert server.runtime is not None
    project_id = make_project(admin, "gives up")
    hook = make_webhook(admin, project_id, receiver.url("/never"), is_active=False)
    dispatcher = WebhookDispatcher(
        server.runtime.store, server.runtime.pool, server.url, max_attempts=3, backoff=60
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        (outbox_id,) = conn.execute(
            "INSERT INTO webhook_outbox (webhook_id, event, payload, next_attempt)"
            " VALUES (%s, 'update:task', '{\"event\": \"update:task\"}',"
            " now() + interval '1 hour') RETURNING id",  # never due for the running dispatcher
            (hook["id"],),
        ).fetchone()

        def attempt(number: int, status: int) -> tuple[bool, float]:
            outgoing = Outgoing(
                outbox_id, hook["id"], "update:task", '{"event": "update:task"}', False,
                number, receiver.url("/never"), True, "",
            )  # fmt: skip
            dispatcher.record(outgoing, Answer(status, "no", 5))
            done, wait = conn.execute(
                "SELECT done, extract(epoch FROM next_attempt - now()) FROM webhook_outbox"
                " WHERE id = %s",
                (outbox_id,),
            ).fetchone()
            return done, float(wait)

        done, wait = attempt(1, 503)
        assert not done and 50 < wait <= 60
        done, wait = attempt(2, 429)
        assert not done and 110 < wait <= 120
        done, _ = attempt(3, 500)
        assert done
    history = deliveries(admin, hook["id"])
    assert [(d["attempt"], d["status_code"]) for d in history] == [(3, 500), (2, 429), (1, 503)]
