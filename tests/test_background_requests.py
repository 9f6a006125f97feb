"""A starting server fails the background requests of dead instances, never of live ones."""

from __future__ import annotations

from infra.background import Operation, RequestLog
from infra.database import open_pool
from infra.instances import InstanceLock
from tests.live_server import LiveServer


def test_only_requests_of_gone_instances_are_failed(server: LiveServer) -> None:
    pool = open_pool(server.database_url, max_size=2)
    alive, dead = InstanceLock(server.database_url), InstanceLock(server.database_url)
    try:
        running = RequestLog(pool, alive.key).open(Operation("create:task", "task", task_id=1), 1)
        orphaned = RequestLog(pool, dead.key).open(Operation("create:task", "task", task_id=2), 1)
        dead.close()  # its server stopped (or crashed) with the request unfinished
        starting = RequestLog(pool, InstanceLock(server.database_url).key)
        assert starting.fail_interrupted() == 1
        assert starting.get(orphaned)["status"] == "failed"
        assert "restart" in starting.get(orphaned)["message"]
        assert starting.get(running)["status"] == "queued"
    finally:
        alive.close()
        pool.close()
