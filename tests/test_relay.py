"""The JetStream relay against real PostgreSQL and NATS: exactly once, in log order, no gaps.

Edits go through the live server's REST API; each test runs its relays in `asyncio.run`, on
its own stream (and subject prefix) so that tests do not see each other's messages.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.api import RawStreamMsg

import infra.embedded_nats
from core.jobs import Job
from infra.embedded_nats import EmbeddedNats
from infra.store import Palimpsest
from projections.envelope import (
    Envelope,
    Scope,
    decode,
    envelope_schema,
    subject_for,
)
from projections.relay import MSG_ID, Relay, ScopeResolver
from tests.conftest import register
from tests.live_server import LiveServer, free_port
from tests.task_setup import upload_task

FAST = {"poll_interval": 0.02, "lock_retry": 0.05, "ack_timeout": 1.0, "reconnect_wait": 0.1}


# Edits through the REST API


@pytest.fixture(scope="module")
def world(
    server: LiveServer, admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A mixed log: a user, a project with a task and two jobs, annotation edits, a deleted task."""
    folder = tmp_path_factory.mktemp("frames")
    register(server, "relay-user").close()
    project = admin.post("/api/projects", json={"name": "fan-out", "labels": [{"name": "car"}]})
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    task = upload_task(
        admin,
        folder / "a",
        ["a.png", "b.png", "c.png", "d.png"],
        {"name": "in-project", "project_id": project_id, "segment_size": 2},
    )
    jobs = job_ids(admin, task["id"])
    label = admin.get("/api/labels", params={"task_id": task["id"]}).json()["results"][0]["id"]
    box = {"type": "rectangle", "label_id": label, "frame": 0, "points": [1, 1, 5, 5]}
    created = patch(admin, jobs[0], "create", {"shapes": [box]})
    moved = {**created["shapes"][0], "points": [2.0, 2.0, 6.0, 6.0]}
    patch(admin, jobs[0], "update", {"shapes": [moved]})
    patch(admin, jobs[0], "delete", {"shapes": [moved]})
    lone = upload_task(admin, folder / "b", ["x.png"], {"name": "lone", "labels": [{"name": "a"}]})
    (lone_job,) = job_ids(admin, lone["id"])
    assert admin.delete(f"/api/tasks/{lone['id']}").status_code == 204
    return {
        "project": project_id,
        "task": task["id"],
        "jobs": jobs,
        "label": label,
        "lone_task": lone["id"],
        "lone_job": lone_job,
    }


def job_ids(admin: httpx.Client, task_id: int) -> list[int]:
    jobs = admin.get("/api/jobs", params={"task_id": task_id, "sort": "id"}).json()["results"]
    return [job["id"] for job in jobs]


def patch(admin: httpx.Client, job: int, action: str, body: dict[str, Any]) -> dict[str, Any]:
    response = admin.patch(f"/api/jobs/{job}/annotations/", params={"action": action}, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def add_boxes(admin: httpx.Client, world: dict[str, Any], count: int) -> None:
    """`count` edits, one event each."""
    box = {"type": "rectangle", "label_id": world["label"], "frame": 2, "points": [1, 1, 3, 3]}
    for _ in range(count):
        patch(admin, world["jobs"][1], "create", {"shapes": [box]})


# Reading back


def app_of(server: LiveServer) -> Palimpsest:
    assert server.runtime is not None
    return server.runtime.store


def log_ids(app: Palimpsest) -> list[int]:
    return [n.id for n in app.recorder.select_notifications(1, 1_000_000)]


def make_relay(server: LiveServer, url: str, stream: str, prefix: str, **options: Any) -> Relay:
    assert server.runtime is not None
    settings = {**FAST, **options}
    return Relay(
        server.runtime.store,
        server.runtime.pool,
        url,
        stream=stream,
        subject_prefix=prefix,
        **settings,
    )


async def read_stream(url: str, stream: str) -> list[RawStreamMsg]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        first, last = info.state.first_seq, info.state.last_seq
        return [await js.get_msg(stream, seq=seq) for seq in range(first, last + 1)]
    finally:
        await nc.close()


async def delete_stream(url: str, stream: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def assert_exactly_once(app: Palimpsest, messages: list[RawStreamMsg]) -> list[Envelope]:
    """One message per notification, in log order, no gaps; returns the decoded envelopes."""
    ids = [int((m.headers or {})[MSG_ID]) for m in messages]
    assert ids == log_ids(app)
    envelopes = [decode(m.data or b"") for m in messages]
    assert [e.notification_id for e in envelopes] == ids
    return envelopes


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def caught_up(relay: Relay, app: Palimpsest, timeout: float = 10.0) -> None:
    last = log_ids(app)[-1]
    await until(lambda: relay.position == last, timeout)


async def blocking(call: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(call, *args)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


# The tests


def test_every_event_once_in_log_order(
    server: LiveServer, world: dict[str, Any], nats_url: str
) -> None:
    app = app_of(server)

    async def scenario() -> None:
        relay = Relay(app, server.runtime.pool, nats_url, **FAST)  # type: ignore[union-attr]
        task = asyncio.create_task(relay.run())
        try:
            await caught_up(relay, app)
            await relay.stop()
            await task
            messages = await read_stream(nats_url, "PALIMPSEST_EVENTS")
        finally:
            await delete_stream(nats_url, "PALIMPSEST_EVENTS")
        envelopes = assert_exactly_once(app, messages)
        check_envelopes(world, messages, envelopes)
        assert relay.published == len(messages)

    run(scenario)


def check_envelopes(
    world: dict[str, Any], messages: list[RawStreamMsg], envelopes: list[Envelope]
) -> None:
    by_type = {}
    for message, envelope in zip(messages, envelopes, strict=True):
        assert message.subject == subject_for(envelope)
        by_type.setdefault(envelope.type, []).append((message.subject, envelope))
    subject, created = by_type["Job.AnnotationsCreated"][0]
    job, task, project = world["jobs"][0], world["task"], world["project"]
    assert subject == f"palimpsest.events._.{project}.{task}.{job}.AnnotationsCreated"
    assert (created.organization_id, created.project_id, created.task_id, created.job_id) == (
        None,
        project,
        task,
        job,
    )
    assert created.schema == 1 and created.actor is not None and created.time.endswith("Z")
    assert created.stream == str(Job.stream_id(job)) and created.stream_version > 1
    assert created.payload["data"]["shapes"][0]["points"] == [1.0, 1.0, 5.0, 5.0]
    assert "originator_id" not in created.payload and "timestamp" not in created.payload
    assert any(
        s == f"palimpsest.events._._.{world['lone_task']}.{world['lone_job']}.Deleted"
        for s, _ in by_type["Job.Deleted"]
    )
    user_subject, user = by_type["User.Created"][-1]
    assert user_subject == "palimpsest.events._._._._.Created"
    assert user.payload["username"] == "relay-user" and "password_hash" not in user.payload
    assert by_type["Project.Created"][0][0] == f"palimpsest.events._.{project}._._.Created"


def test_a_killed_relay_is_resumed_without_repeats(
    server: LiveServer, admin: httpx.Client, world: dict[str, Any], nats_url: str
) -> None:
    app = app_of(server)
    add_boxes(admin, world, 120)
    total = len(log_ids(app))

    async def scenario() -> None:
        first = make_relay(server, nats_url, "RELAY_B", "relb.events", batch_size=4)
        task = asyncio.create_task(first.run())
        try:
            await until(lambda: first.position >= log_ids(app)[40])
            task.cancel()  # a crash: no clean stop
            await asyncio.gather(task, return_exceptions=True)
            stored = len(await read_stream(nats_url, "RELAY_B"))
            assert 40 < stored < total
            second = make_relay(server, nats_url, "RELAY_B", "relb.events")
            task = asyncio.create_task(second.run())
            await caught_up(second, app)
            await second.stop()
            assert_exactly_once(app, await read_stream(nats_url, "RELAY_B"))
            assert second.published == total - stored  # nothing re-published
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await delete_stream(nats_url, "RELAY_B")

    run(scenario)


def test_nats_outage_during_a_burst_of_edits(
    server: LiveServer,
    admin: httpx.Client,
    world: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = app_of(server)
    port = free_port()
    monkeypatch.setattr(infra.embedded_nats, "_free_port", lambda: port)  # same URL on restart
    own_nats = EmbeddedNats(tmp_path / "nats")
    url = own_nats.start()
    edited = [threading.Event() for _ in range(3)]

    def burst() -> None:
        for count in range(1, 61):
            add_boxes(admin, world, 1)  # asserts 200: edits never wait on NATS
            if count in (10, 30, 60):
                edited[(10, 30, 60).index(count)].set()
            time.sleep(0.005)

    async def scenario() -> None:
        relay = make_relay(server, url, "RELAY_C", "relc.events", ack_timeout=0.5)
        task = asyncio.create_task(relay.run())
        try:
            await caught_up(relay, app)
            edits = asyncio.create_task(blocking(burst))
            await blocking(edited[0].wait)
            await blocking(own_nats.stop)
            await blocking(edited[1].wait)
            await asyncio.sleep(1.0)  # longer than ack_timeout: the relay has to give up and retry
            assert relay.position < log_ids(app)[-1]
            assert await blocking(own_nats.start) == url
            await edits
            await caught_up(relay, app, timeout=15)
            await relay.stop()
            assert_exactly_once(app, await read_stream(url, "RELAY_C"))
        finally:
            await relay.stop()
            await asyncio.gather(task, return_exceptions=True)

    try:
        run(scenario)
    finally:
        own_nats.stop()


def test_two_relays_only_one_publishes(
    server: LiveServer, admin: httpx.Client, world: dict[str, Any], nats_url: str
) -> None:
    app = app_of(server)

    async def scenario() -> None:
        relays = [make_relay(server, nats_url, "RELAY_D", "reld.events", lock_key=77) for _ in "ab"]
        tasks = [asyncio.create_task(relay.run()) for relay in relays]
        try:
            await blocking(add_boxes, admin, world, 10)
            await until(lambda: max(r.position for r in relays) == log_ids(app)[-1])
            leader, follower = sorted(relays, key=lambda r: r.published, reverse=True)
            assert leader.leading and not follower.leading and follower.published == 0
            await leader.stop()
            await blocking(add_boxes, admin, world, 10)
            await caught_up(follower, app)
            assert follower.published == 10
            assert_exactly_once(app, await read_stream(nats_url, "RELAY_D"))
        finally:
            for relay in relays:
                await relay.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await delete_stream(nats_url, "RELAY_D")

    run(scenario)


def test_two_publishers_without_the_lock_still_store_each_event_once(
    server: LiveServer, admin: httpx.Client, world: dict[str, Any], nats_url: str
) -> None:
    """The stream-sequence guard alone keeps order and gaps right (a lock lost unnoticed)."""
    app = app_of(server)

    async def scenario() -> None:
        relays = [
            make_relay(server, nats_url, "RELAY_E", "rele.events", lock_key=90 + i, batch_size=8)
            for i in range(2)
        ]
        tasks = [asyncio.create_task(relay.run()) for relay in relays]
        try:
            edits = asyncio.create_task(blocking(add_boxes, admin, world, 60))
            await until(lambda: all(r.leading for r in relays))
            await edits
            await until(lambda: min(r.position for r in relays) == log_ids(app)[-1])
            assert_exactly_once(app, await read_stream(nats_url, "RELAY_E"))
        finally:
            for relay in relays:
                await relay.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await delete_stream(nats_url, "RELAY_E")

    run(scenario)


def test_a_purged_stream_resumes_from_the_tracked_position(
    server: LiveServer, admin: httpx.Client, world: dict[str, Any], nats_url: str
) -> None:
    """When the last message is gone (max_age, a purge), nothing is published twice."""
    app = app_of(server)

    async def scenario() -> None:
        relay = make_relay(server, nats_url, "RELAY_F", "relf.events")
        task = asyncio.create_task(relay.run())
        try:
            await caught_up(relay, app)
            await relay.stop()
            nc = await nats.connect(nats_url)
            await nc.jetstream().purge_stream("RELAY_F")
            await nc.close()
            await blocking(add_boxes, admin, world, 3)
            relay = make_relay(server, nats_url, "RELAY_F", "relf.events")
            task = asyncio.create_task(relay.run())
            await caught_up(relay, app)
            assert relay.published == 3
            messages = await read_stream(nats_url, "RELAY_F")
            assert [int((m.headers or {})[MSG_ID]) for m in messages] == log_ids(app)[-3:]
        finally:
            await relay.stop()
            await asyncio.gather(task, return_exceptions=True)
            await delete_stream(nats_url, "RELAY_F")

    run(scenario)


def test_a_deleted_job_is_scoped_from_its_created_event(
    server: LiveServer, world: dict[str, Any]
) -> None:
    app = app_of(server)
    assert server.runtime is not None
    resolver = ScopeResolver(app, server.runtime.pool)  # empty cache; the catalog row is gone
    stream = Job.stream_id(world["lone_job"])
    deleted = app.mapper.to_domain_event(app.recorder.select_events(stream, desc=True, limit=1)[0])
    assert isinstance(deleted, Job.Deleted)
    assert resolver.scope(deleted) == Scope(None, None, world["lone_task"], world["lone_job"])


def test_subject_and_schema() -> None:
    assert "Envelope" in str(envelope_schema())
    envelope = Envelope(
        notification_id=1,
        type="Task.Updated",
        stream="s",
        stream_version=2,
        actor=None,
        command_id=None,
        time="t",
        organization_id=3,
        project_id=None,
        task_id=4,
        job_id=None,
        payload={},
    )
    assert subject_for(envelope, "p.e") == "p.e.3._.4._.Updated"
