"""Replay benchmark: a log of annotation events rebuilt into read models from empty.

The log (1,000,000 events; 50,000 with --quick) is made once and kept under a cache dir
(default ~/.cache/palimpsest-bench/replay-N, an embedded PostgreSQL cluster), so later runs
reuse it. It is made the way the server makes it, but in big batches: one admin, 10
projects of 10 tasks of 100 frames in jobs of 10 frames (1,000 jobs) through the commands,
then annotation events on random jobs, each saved through the event store as the writer
would: 60% creations (a box; now and then a polygon, a tag or a 3-key-frame track), 30%
updates of an existing object, 10% deletions, each its own command (so undo steps are kept
as the server keeps them).

Each projection named (default: the annotation index) is then rebuilt as `palimpsest
replay --projection NAME` does (projections/rebuild.py): from position 0 into an empty
scratch copy of its tables, then swapped in place of the live rows. Printed: events/s of the
rebuild (reading, decoding and writing included) and of decoding alone, the swap's seconds,
rows, and the PostgreSQL and benchmark CPU with the events per CPU second they add up to
(the figure to read on a machine busy with other work).

    .venv/bin/python bench/replay.py --quick
    .venv/bin/python bench/replay.py --projection annotation_index --projection history
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import psutil
import psycopg
from harness import cpu_seconds, find_postmaster
from psycopg_pool import ConnectionPool

from core.annotations import LabeledData, ObjectIds, Shape, Tag, Track, TrackedShape
from core.commands import CommandContext, acting_as
from core.jobs import Job
from core.labels import LabelInput
from core.permissions import Principal
from core.projects import ProjectWrite, create_project
from core.task_data import FrameMeta, TaskData
from core.tasks import TaskWrite, attach_data, create_task
from infra.cli import ensure_admin
from infra.database import IdSequences, create_schema, ensure_database, open_pool
from infra.embedded import EmbeddedPostgres, postgres_home
from infra.event_decoding import FastMapper
from infra.progress import ProgressBar
from infra.runtime import Runtime
from infra.services import DATABASE_NAME, with_database
from infra.settings import Settings
from infra.store import Palimpsest, open_store
from projections import registry
from projections.rebuild import Rebuilder
from projections.runner import Table

CACHE = Path.home() / ".cache" / "palimpsest-bench"
PROJECTS = 10
TASKS = 10
FRAMES = 100
SEGMENT = 10
SAVE_EVERY = 5_000  # events a transaction while making the log
GOAL = 50_000  # events/s a projection


def start_postgres(data_dir: Path) -> tuple[EmbeddedPostgres, str]:
    postgres = EmbeddedPostgres(postgres_home(data_dir))
    server_url = postgres.start()
    ensure_database(server_url, DATABASE_NAME)
    return postgres, with_database(server_url, DATABASE_NAME)


def event_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('palimpsest_events')").fetchone()
        if not exists or exists[0] is None:
            return 0
        row = conn.execute("SELECT count(*) FROM palimpsest_events").fetchone()
    return int(row[0]) if row else 0


# ------------------------------------------------------------------------------ the log


def make_jobs(data_dir: Path, database_url: str) -> tuple[list[int], dict[int, list[int]]]:
    """Projects, tasks and jobs through the commands: (job ids, label ids by job)."""
    runtime = Runtime.open(Settings(data_dir=data_dir), database_url)
    try:
        ensure_admin(runtime, "bench-admin-password")
        admin = Principal(1, "admin", is_superuser=True)
        frames = [FrameMeta(f"{i:04d}.png", 1920, 1080) for i in range(FRAMES)]
        jobs: list[int] = []
        labels: dict[int, list[int]] = {}
        for p in range(PROJECTS):
            body = ProjectWrite(
                name=f"project {p}",
                labels=[
                    msgspec.convert({"name": n}, LabelInput) for n in ("car", "person", "bike")
                ],
            )
            project = runtime.writer.submit_sync(
                lambda unit, body=body: create_project(unit, admin, body)
            ).value
            label_ids = [label.id for label in project.labels]
            for t in range(TASKS):
                task_body = TaskWrite(
                    name=f"task {p}.{t}", project_id=project.project_id, segment_size=SEGMENT
                )
                task = runtime.writer.submit_sync(
                    lambda unit, b=task_body: create_task(unit, admin, b)
                ).value
                data = TaskData(
                    data_id=task.task_id, image_quality=70, chunk_size=36, size=FRAMES,
                    start_frame=0, stop_frame=FRAMES - 1, frame_filter="",
                    sorting_method="lexicographical", frames=frames,
                )  # fmt: skip
                attached = runtime.writer.submit_sync(
                    lambda unit, i=task.task_id, d=data: attach_data(unit, admin, i, d)
                ).value
                jobs += attached.job_ids
                labels.update({job: label_ids for job in attached.job_ids})
        return jobs, labels
    finally:
        runtime.close()


class LogMaker:
    """Annotation events on random jobs, saved through the store in big transactions."""

    def __init__(self, store: Palimpsest, ids: IdSequences, labels: dict[int, list[int]]) -> None:
        self.store = store
        self.ids = ids
        self.labels = labels
        self.rng = random.Random(20261125)
        self.objects: dict[int, dict[int, Tag | Shape | Track]] = {job: {} for job in labels}
        self.jobs = {job: store.repository.get(Job.stream_id(job)) for job in labels}
        self.fresh: list[int] = []
        self.command = 0

    def make(self, count: int) -> None:
        bar = ProgressBar("making the log", count)
        made = 0
        while made < count:
            batch = min(SAVE_EVERY, count - made)
            self.fresh = self.ids.take("annotation", batch * 3)
            touched: dict[int, Job] = {}
            for _ in range(batch):
                job_id = self.rng.choice(list(self.jobs))
                self._edit(job_id)
                touched[job_id] = self.jobs[job_id]
            self.store.save(*touched.values())
            made += batch
            bar(made)
        bar.done()

    def _edit(self, job_id: int) -> None:
        job, objects, rng = self.jobs[job_id], self.objects[job_id], self.rng
        self.command += 1
        with acting_as(CommandContext(actor=1, command_id=f"bench-{self.command}")):
            roll = rng.random()
            if roll < 0.6 or not objects:
                made = self._new(job)
                job.trigger_event(Job.AnnotationsCreated, data=_data(made))
                objects[made.id] = made  # type: ignore[index]
            elif roll < 0.9:
                old = objects[rng.choice(list(objects))]
                moved = _moved(old, rng)
                job.trigger_event(Job.AnnotationsUpdated, data=_data(moved))
                objects[moved.id] = moved  # type: ignore[index]
            else:
                doomed = objects.pop(rng.choice(list(objects)))
                job.trigger_event(
                    Job.AnnotationsDeleted, ids=ObjectIds(**{_kind(doomed): [doomed.id]})
                )

    def _new(self, job: Job) -> Tag | Shape | Track:
        rng = self.rng
        ident = self.fresh.pop()
        label = rng.choice(self.labels[job.job_id])
        frame = rng.randint(job.start_frame, job.stop_frame)
        x, y = rng.uniform(0, 1800), rng.uniform(0, 1000)
        roll = rng.random()
        if roll < 0.8:
            return Shape("rectangle", label, frame, [x, y, x + 80, y + 60], id=ident)
        if roll < 0.9:
            points = [x, y, x + 50, y, x + 50, y + 40, x, y + 40]
            return Shape("polygon", label, frame, points, id=ident)
        if roll < 0.95:
            return Tag(label, frame, id=ident)
        keys = [
            TrackedShape("rectangle", frame + step, [x + step, y, x + 80 + step, y + 60])
            for step in range(0, 3)
            if frame + step <= job.stop_frame
        ]
        return Track(label, frame, keys, id=ident)


def _kind(obj: Tag | Shape | Track) -> str:
    return {Tag: "tags", Shape: "shapes", Track: "tracks"}[type(obj)]


def _data(obj: Tag | Shape | Track) -> LabeledData:
    return LabeledData(**{_kind(obj): [obj]})


def _moved(obj: Tag | Shape | Track, rng: random.Random) -> Tag | Shape | Track:
    if isinstance(obj, Shape):
        dx = rng.uniform(-5, 5)
        return msgspec.structs.replace(obj, points=[p + dx for p in obj.points])
    if isinstance(obj, Track):
        return msgspec.structs.replace(obj, group=(obj.group or 0) + 1)
    return msgspec.structs.replace(obj, source="auto" if obj.source == "manual" else "manual")


def ensure_log(data_dir: Path, database_url: str, events: int) -> None:
    have = event_count(database_url)
    if have >= events:
        print(f"reusing the log in {data_dir} ({have} events)")
        pool = open_pool(database_url)
        try:
            create_schema(pool)  # the read models' tables as this version has them
        finally:
            pool.close()
        return
    if have:
        raise SystemExit(f"{data_dir} holds a log of {have} events, not {events}: remove it")
    started = time.perf_counter()
    _, labels = make_jobs(data_dir, database_url)
    store = open_store(database_url)
    pool = open_pool(database_url)
    try:
        LogMaker(store, IdSequences(pool), labels).make(events - event_count(database_url))
    finally:
        store.close()
        pool.close()
    print(
        f"made a log of {event_count(database_url)} events in {time.perf_counter() - started:.0f} s"
    )


# ------------------------------------------------------------------------------ replay


def decode_rate(store: Palimpsest, decode: Callable[[Any], Any]) -> float:
    """Events/s of reading and decoding the whole log, with nothing written."""
    started, position, count = time.perf_counter(), 0, 0
    while True:
        notifications = store.recorder.select_notifications(start=position + 1, limit=5000)
        for notification in notifications:
            decode(notification)
        count += len(notifications)
        if len(notifications) < 5000:
            return count / (time.perf_counter() - started)
        position = notifications[-1].id


def replay(database_url: str, names: list[str]) -> int:
    store = open_store(database_url)
    pool = open_pool(database_url)
    failed = 0
    try:
        with pool.connection() as conn:
            postmaster, _ = find_postmaster(conn)
        me = psutil.Process()
        total = store.recorder.max_notification_id() or 0
        fast = decode_rate(store, FastMapper(store).to_domain_event)
        standard = decode_rate(store, store.mapper.to_domain_event)
        print(
            f"log: {total} events; reading and decoding alone: {fast:,.0f} events/s"
            f" (the store's own decoder: {standard:,.0f} events/s)"
        )
        for name in names:
            bar = ProgressBar(f"replay {name}", total)
            pg_before = cpu_seconds(postmaster, with_children=True) or 0.0
            mine_before = cpu_seconds(me) or 0.0
            started = time.perf_counter()
            rebuilder = Rebuilder(store, pool, registry.make(name))
            replayed = rebuilder.replay(progress=bar)
            position = replayed.position
            seconds = time.perf_counter() - started
            bar.done()
            pg_cpu = (cpu_seconds(postmaster, with_children=True) or 0.0) - pg_before
            mine = (cpu_seconds(me) or 0.0) - mine_before
            rows = _rows(pool, registry.make(name).tables)
            rate = position / seconds
            verdict = "met" if rate >= GOAL else "MISSED"
            print(
                f"{name}: {position} events in {seconds:.1f} s = {rate:,.0f} events/s"
                f" (build {replayed.build_seconds:.1f} s, catch-up and swap"
                f" {replayed.swap_seconds:.1f} s)  goal >= {GOAL:,}/s: {verdict}\n"
                f"    cpu: benchmark {mine:.1f} s, postgres {pg_cpu:.1f} s ="
                f" {position / max(mine + pg_cpu, 1e-9):,.0f} events per cpu second;"
                f" load average {os.getloadavg()[0]:.1f}\n    rows: {rows}"
            )
            failed += rate < GOAL
    finally:
        store.close()
        pool.close()
    return 1 if failed else 0


def _rows(pool: ConnectionPool, tables: Sequence[Table]) -> str:
    counts = []
    with pool.connection() as conn:
        for table in tables:
            query = psycopg.sql.SQL("SELECT count(*) FROM {}").format(
                psycopg.sql.Identifier(table.name)
            )
            counts.append(f"{table.name} {conn.execute(query).fetchone()[0]}")
    return ", ".join(counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a log of 50,000 events")
    parser.add_argument("--events", type=int, help="events in the log (default 1,000,000)")
    parser.add_argument("--projection", action="append", choices=registry.names())
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    args = parser.parse_args()
    events = args.events or (50_000 if args.quick else 1_000_000)
    data_dir = args.cache_dir / f"replay-{events}"
    data_dir.mkdir(parents=True, exist_ok=True)
    postgres, database_url = start_postgres(data_dir)
    try:
        ensure_log(data_dir, database_url, events)
        return replay(database_url, args.projection or ["annotation_index"])
    finally:
        postgres.stop()


if __name__ == "__main__":
    sys.exit(main())
