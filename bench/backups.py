"""Task backups: export and import of a task of many small images and many shapes.

Against a fresh `palimpsest serve` (embedded PostgreSQL and NATS in a temp data dir): a task
of `--frames` images in jobs of `--segment-size`, `--shapes` boxes put into it, then

    export   POST /api/tasks/{id}/backup/export -> 202 {rq_id}, polled to "finished", and
             the download of the archive
    import   POST /api/tasks/backup/ with the archive as multipart task_file -> 202 {rq_id},
             polled to "finished" (the 202 comes after the archive is read and checked)

with the server's and PostgreSQL's CPU for each, and the machine's load average.

    .venv/bin/python bench/backups.py --quick     # 200 frames, 4,000 shapes
    .venv/bin/python bench/backups.py             # 2,000 frames, 40,000 shapes
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import psycopg
from harness import (
    AUTH,
    CpuMeter,
    create_task,
    expect,
    make_images,
    running,
    temp_data_dir,
    upload_images,
    wait_for_request,
)

TIMEOUT = 3_600.0
T = TypeVar("T")


def measured(meter: CpuMeter, name: str, run: Callable[[], T]) -> T:
    server, postgres = meter.server_cpu(), meter.postgres_cpu()
    started = time.perf_counter()
    result = run()
    wall = time.perf_counter() - started
    pg = meter.postgres_cpu()
    pg_text = "n/a" if pg is None or postgres is None else f"{pg - postgres:.2f} s"
    print(
        f"{name:>8}: {wall:6.2f} s wall, server CPU {meter.server_cpu() - server:.2f} s, "
        f"PostgreSQL CPU {pg_text}, load average {os.getloadavg()[0]:.1f}"
    )
    return result


def boxes(count: int, frames: int, label_id: int) -> list[dict[str, object]]:
    return [
        {"type": "rectangle", "label_id": label_id, "frame": i % frames,
         "points": [i % 50, i % 40, i % 50 + 10, i % 40 + 5]}
        for i in range(count)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--frames", type=int, default=2_000)
    parser.add_argument("--shapes", type=int, default=40_000)
    parser.add_argument("--segment-size", type=int, default=100)
    args = parser.parse_args()
    if args.quick:
        args.frames, args.shapes = args.frames // 10, args.shapes // 10
    with temp_data_dir("bench-backups-") as data_dir, running(data_dir) as server:
        db = psycopg.connect(server.database_url, autocommit=True)
        meter = CpuMeter(server, db)
        with httpx.Client(base_url=server.url, auth=AUTH, timeout=TIMEOUT) as client:
            task_id = create_task(client, "bench", segment_size=args.segment_size)
            rq_id = upload_images(client, task_id, make_images(args.frames))
            wait_for_request(client, rq_id, timeout=TIMEOUT)
            labels = client.get("/api/labels", params={"task_id": task_id}).json()["results"]
            body = {"shapes": boxes(args.shapes, args.frames, labels[0]["id"])}
            expect(client.put(f"/api/tasks/{task_id}/annotations/", json=body), 200)
            print(f"task: {args.frames} frames, {args.shapes} boxes, jobs of {args.segment_size}")

            def export() -> bytes:
                started = client.post(f"/api/tasks/{task_id}/backup/export")
                status, _ = wait_for_request(
                    client, expect(started, 202).json()["rq_id"], timeout=TIMEOUT
                )
                return expect(client.get(status["result_url"]), 200).content

            archive = measured(meter, "export", export)
            print(f"archive: {len(archive) / 1e6:.1f} MB")

            def restore() -> int:
                files = {"task_file": ("backup.zip", archive, "application/zip")}
                started = expect(client.post("/api/tasks/backup/", files=files), 202)
                status, _ = wait_for_request(client, started.json()["rq_id"], timeout=TIMEOUT)
                return int(status["result_id"])

            copy = measured(meter, "import", restore)
            shapes = client.get(f"/api/tasks/{copy}/annotations/").json()["shapes"]
            assert len(shapes) == args.shapes, len(shapes)


if __name__ == "__main__":
    main()
