"""What the permission policy costs: the same requests with it on and with it bypassed.

Two `palimpsest serve` processes share one database (as in docker-compose): server A runs the
policy; server B is started with the TEST-ONLY switch PALIMPSEST_TEST_BYPASS_POLICY=1, which
makes `authorize` and `visible_where` allow everything and skips the per-request membership
lookup and the relation lookup of `permitted`. Through A, an organization `bench` is made
with a worker (role worker), and N tasks in it (one in ten assigned to the worker). Then the
worker's requests alternate between A and B, one after the other, so both see the same load:

    GET   /api/tasks/{id}               one of the worker's tasks
    PATCH /api/tasks/{id} {"name"}      renaming it (the assignee may)
    GET   /api/tasks?org=bench          the first list page (10), filtered in SQL to what the
                                        worker may see (N/10 tasks); unfiltered on B (N)

For each: the median round trip and the median server handler time (JSON request log) on
each server and the cost (t_on - t_off) / t_off. Goal: under 5%.

    .venv/bin/python bench/permissions.py --quick   # 1,000 tasks, 100 requests each
    .venv/bin/python bench/permissions.py           # 10,000 tasks, 1,000 requests each
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psycopg
from harness import AUTH, Server, cpu_seconds, expect, running, temp_data_dir

PASSWORD = "bench-worker-1"
IDLE_WINDOW = 1.0  # a server is idle once it spends under IDLE_SHARE of a core over this
IDLE_SHARE = 0.05
CREATORS = 8  # client threads creating tasks
print = functools.partial(print, flush=True)  # noqa: A001  # progress shows while it runs


@dataclass(frozen=True)
class Scale:
    tasks: int = 10_000
    requests: int = 1_000


@dataclass
class Timings:
    round_trips: list[float]
    handler_ms: list[float]


def set_up(server: Server, scale: Scale) -> tuple[str, list[int]]:
    """The organization, its worker and the tasks; (the worker's session key, their tasks)."""
    with httpx.Client(base_url=server.url, auth=AUTH, timeout=60) as admin:
        expect(admin.post("/api/organizations", json={"slug": "bench", "name": "Bench"}), 201)
        expect(
            admin.post(
                "/api/auth/register",
                json={
                    "username": "walt",
                    "email": "walt@example.com",
                    "password1": PASSWORD,
                    "password2": PASSWORD,
                },
            ),
            201,
        )
        invitation = expect(
            admin.post(
                "/api/invitations",
                params={"org": "bench"},
                json={"role": "worker", "email": "walt@example.com"},
            ),
            201,
        ).json()
        with httpx.Client(base_url=server.url, auth=("walt", PASSWORD), timeout=60) as walt:
            expect(walt.post(f"/api/invitations/{invitation['key']}/accept"), 200)
            walt_id = int(expect(walt.get("/api/users/self"), 200).json()["id"])

    started = time.perf_counter()
    with ThreadPoolExecutor(CREATORS) as pool:
        ids = list(pool.map(lambda i: _create_task(server, i, walt_id), range(scale.tasks)))
    seconds = time.perf_counter() - started
    print(f"{scale.tasks} tasks made in {seconds:.1f} s ({scale.tasks / seconds:.0f}/s)")
    # The planner's statistics as autovacuum leaves them within a minute of a bulk load:
    # measured before that, the first round's lists were planned for an empty table.
    with psycopg.connect(server.database_url, autocommit=True) as db:
        db.execute("VACUUM ANALYZE")
    key = expect(
        httpx.post(f"{server.url}/api/auth/login", json={"username": "walt", "password": PASSWORD}),
        200,
    ).json()["key"]
    return key, ids[::10]


_clients: dict[str, httpx.Client] = {}


def _create_task(server: Server, index: int, walt_id: int) -> int:
    import threading

    name = threading.current_thread().name
    client = _clients.get(name)
    if client is None:
        client = _clients[name] = httpx.Client(base_url=server.url, auth=AUTH, timeout=60)
    body = {"name": f"task {index}", "labels": [{"name": "car"}]}
    if index % 10 == 0:
        body["assignee_id"] = walt_id
    answer = client.post("/api/tasks", json=body, headers={"X-Organization": "bench"})
    return int(expect(answer, 201).json()["id"])


def settle(servers: dict[str, Server], timeout: float = 15.0) -> float:
    """Waits until every server is idle (background followers done), at most `timeout`
    seconds (a follower polling on a busy machine may never look idle); the seconds waited."""
    started = time.perf_counter()
    before = {mode: cpu_seconds(server.ps) or 0.0 for mode, server in servers.items()}
    while time.perf_counter() - started < timeout:
        time.sleep(IDLE_WINDOW)
        now = {mode: cpu_seconds(server.ps) or 0.0 for mode, server in servers.items()}
        if all(now[m] - before[m] < IDLE_WINDOW * IDLE_SHARE for m in servers):
            break
        before = now
    return time.perf_counter() - started


def measure(
    servers: dict[str, Server],
    key: str,
    count: int,
    method: str,
    paths: dict[str, str],
    send: Callable[[httpx.Client, str, int], httpx.Response],
) -> dict[str, Timings]:
    """`count` requests on each server (to its path), alternating, and alternating which
    server goes first."""
    clients = {
        mode: httpx.Client(
            base_url=server.url, headers={"Authorization": f"Token {key}"}, timeout=60
        )
        for mode, server in servers.items()
    }
    settle(servers)
    offsets = {mode: server.log_size() for mode, server in servers.items()}
    round_trips: dict[str, list[float]] = {mode: [] for mode in servers}
    modes = list(servers)
    try:
        for mode in modes:  # warm up: connections, caches
            for i in range(5):
                expect(send(clients[mode], paths[mode], i), 200)
        for i in range(count):
            for mode in modes if i % 2 == 0 else reversed(modes):
                started = time.perf_counter()
                expect(send(clients[mode], paths[mode], i), 200)
                round_trips[mode].append(time.perf_counter() - started)
    finally:
        for client in clients.values():
            client.close()
    time.sleep(0.5)  # the request log is written after the answer
    return {
        mode: Timings(
            round_trips[mode], servers[mode].durations(offsets[mode], method, paths[mode])[-count:]
        )
        for mode in servers
    }


def report(name: str, timings: dict[str, Timings]) -> float:
    on_rtt = statistics.median(timings["on"].round_trips) * 1000
    off_rtt = statistics.median(timings["off"].round_trips) * 1000
    on_handler = statistics.median(timings["on"].handler_ms)
    off_handler = statistics.median(timings["off"].handler_ms)
    cost = (on_rtt - off_rtt) / off_rtt
    handler_cost = (on_handler - off_handler) / off_handler
    verdict = "met" if cost < 0.05 else "MISSED"
    print(
        f"{name}: round trip median on {on_rtt:.2f} ms, off {off_rtt:.2f} ms:"
        f" (t_on - t_off) / t_off = {cost:+.1%} (goal < 5%: {verdict});"
        f" handler median on {on_handler:.2f} ms, off {off_handler:.2f} ms: {handler_cost:+.1%}"
    )
    return cost


BYPASS = {"PALIMPSEST_TEST_BYPASS_POLICY": "1"}


@dataclass
class Case:
    name: str
    method: str
    paths: dict[str, str]
    send: Callable[[httpx.Client, str, int], httpx.Response]


def cases(walts: list[int], listed: str) -> list[Case]:
    one = {mode: f"/api/tasks/{walts[0]}" for mode in MODES}
    # Each mode renames its own task: two writers on one task would keep finding their
    # cached task stale.
    own = {"on": f"/api/tasks/{walts[1]}", "off": f"/api/tasks/{walts[2]}"}
    return [
        Case("GET one task", "GET", one, lambda c, p, i: c.get(p)),
        Case("PATCH one task", "PATCH", own, lambda c, p, i: c.patch(p, json={"name": f"n{i}"})),
        Case(
            f"GET /api/tasks first page ({listed})",
            "GET",
            {mode: "/api/tasks" for mode in MODES},
            lambda c, p, i: c.get(p, params={"org": "bench"}),
        ),
    ]


MODES = ("on", "off")


def listed_counts(servers: dict[str, Server], key: str) -> dict[str, int]:
    return {
        mode: httpx.get(
            f"{server.url}/api/tasks",
            params={"org": "bench"},
            headers={"Authorization": f"Token {key}"},
        ).json()["count"]
        for mode, server in servers.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 tasks, 100 requests each")
    args = parser.parse_args()
    scale = Scale(1_000, 100) if args.quick else Scale()
    results: dict[str, dict[str, Timings]] = {}
    with temp_data_dir("plm-bench-perm-") as data_a, temp_data_dir("plm-bench-perm-b-") as data_b:
        # Two rounds, the policy on the first server and then on the second, so that what
        # differs between the two processes (which one holds the background followers, the
        # embedded services) weighs on both modes alike.
        for first, second in (("on", "off"), ("off", "on")):
            env_a = BYPASS if first == "off" else {}
            with running(data_a, json_log=True, extra_env=env_a) as server_a:
                if not results:
                    key, walts = set_up(server_a, scale)
                env_b = BYPASS if second == "off" else {}
                with running(
                    data_b, database_url=server_a.database_url, json_log=True, extra_env=env_b
                ) as server_b:
                    servers = {first: server_a, second: server_b}
                    counts = listed_counts(servers, key)
                    if counts != {"on": scale.tasks // 10, "off": scale.tasks}:
                        print(f"CHECK FAILED: the worker lists {counts} tasks")
                        return 1
                    listed = f"{counts['on']} of {counts['off']} tasks"
                    for case in cases(walts, listed):
                        timings = measure(
                            servers, key, scale.requests // 2, case.method, case.paths, case.send
                        )
                        if case.name not in results:
                            results[case.name] = timings
                        else:
                            for mode in MODES:
                                results[case.name][mode].round_trips += timings[mode].round_trips
                                results[case.name][mode].handler_ms += timings[mode].handler_ms
            print(f"round with the policy on the {'first' if first == 'on' else 'second'}"
                  " server done")  # fmt: skip
    print(f"the worker's list: {listed} with the policy, all {scale.tasks} without")
    costs = [report(name, timings) for name, timings in results.items()]
    return 0 if all(cost < 0.05 for cost in costs) else 2


if __name__ == "__main__":
    sys.exit(main())
