"""The 200,000-tag import (cvat-ai/cvat #10141: over 20 hours in CVAT): a task of 200,000 tiny
images, then a CVAT for images 1.1 XML with one classification tag per frame imported into it.

What it measures, against a fresh `palimpsest serve` (embedded PostgreSQL and NATS in a temp
data dir, unless `--database-url`), the way cvat-cli drives it:

    task creation   POST /api/tasks, Upload-Start, Upload-Multiple batches of client_files,
                    Upload-Finish -> 202 {rq_id}, GET /api/requests/{rq_id} until "finished";
                    printed as upload time, media time (Upload-Finish to finished) and total
    tag import      POST /api/tasks/{id}/annotations/?format=CVAT 1.1 with the XML as
                    multipart annotation_file -> 202 {rq_id}, until "finished"

Then it checks that the task holds one tag per frame, and prints the CPU (user+sys) the
server, PostgreSQL and NATS spent in each phase.

    .venv/bin/python bench/tag_import.py --quick     # 20,000 frames
    .venv/bin/python bench/tag_import.py             # 200,000 frames (goal: import < 60 s)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import cv2
import httpx
import numpy as np
import psycopg
from harness import (
    AUTH,
    CpuMeter,
    create_task,
    expect,
    running,
    temp_data_dir,
    wait_for_request,
)

LABELS = [{"name": "cat"}, {"name": "dog"}]
BATCH = 5_000  # files per Upload-Multiple request (the server takes at most 10,000)
TIMEOUT = 3_600.0
T = TypeVar("T")


@dataclass
class Phase:
    name: str
    wall: float
    server_cpu: float
    postgres_cpu: float | None
    nats_cpu: float | None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000, help="frames (default 200,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 frames")
    parser.add_argument(
        "--segment-size", type=int, default=0, help="frames per job (default 0: one job)"
    )
    parser.add_argument("--database-url", default=None, help="an existing PostgreSQL database")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames = 20_000
    return args


def tiny_png() -> bytes:
    ok, encoded = cv2.imencode(".png", np.full((8, 8, 3), 127, dtype=np.uint8))
    assert ok
    return encoded.tobytes()


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.png"


def tags_xml(frames: int) -> bytes:
    """CVAT for images 1.1 with one tag per image, alternating the two labels."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "<version>1.1</version>"]
    for index in range(frames):
        label = LABELS[index % 2]["name"]
        lines.append(
            f'<image id="{index}" name="{frame_name(index)}" width="8" height="8">'
            f'<tag label="{label}" source="manual"/></image>'
        )
    lines.append("</annotations>")
    return "\n".join(lines).encode()


def create_big_task(client: httpx.Client, frames: int, segment_size: int) -> tuple[int, float]:
    """The task with its data uploaded; (task id, seconds spent uploading)."""
    fields = {"labels": LABELS, **({"segment_size": segment_size} if segment_size else {})}
    task_id = create_task(client, f"{frames} frames", **fields)
    image = tiny_png()
    started = time.perf_counter()
    expect(client.post(f"/api/tasks/{task_id}/data", headers={"Upload-Start": "true"}), 202)
    for first in range(0, frames, BATCH):
        files = [
            (f"client_files[{i}]", (frame_name(index), image, "image/png"))
            for i, index in enumerate(range(first, min(first + BATCH, frames)))
        ]
        sent = client.post(
            f"/api/tasks/{task_id}/data", headers={"Upload-Multiple": "true"}, files=files
        )
        expect(sent, 200)
    return task_id, time.perf_counter() - started


def measured(meter: CpuMeter, name: str, run: Callable[[], T]) -> tuple[Phase, T]:
    before = (meter.server_cpu(), meter.postgres_cpu(), meter.nats_cpu())
    started = time.perf_counter()
    result = run()
    wall = time.perf_counter() - started
    after = (meter.server_cpu(), meter.postgres_cpu(), meter.nats_cpu())
    return Phase(
        name,
        wall,
        after[0] - before[0],
        None if before[1] is None or after[1] is None else after[1] - before[1],
        None if before[2] is None or after[2] is None else after[2] - before[2],
    ), result


def run_phases(
    url: str, meter: CpuMeter, args: argparse.Namespace, document: bytes
) -> tuple[Phase, Phase, Phase]:
    with httpx.Client(base_url=url, auth=AUTH, timeout=TIMEOUT) as client:
        upload, (task_id, _) = measured(
            meter, "upload", lambda: create_big_task(client, args.frames, args.segment_size)
        )

        def finish_data() -> None:
            sent = client.post(
                f"/api/tasks/{task_id}/data",
                headers={"Upload-Finish": "true"},
                json={"image_quality": 70, "sorting_method": "lexicographical"},
            )
            wait_for_request(client, expect(sent, 202).json()["rq_id"], TIMEOUT, 0.2)

        media, _ = measured(meter, "media", finish_data)
        size = client.get(f"/api/tasks/{task_id}").json()["size"]
        assert size == args.frames, f"the task has {size} frames"

        def import_tags() -> None:
            sent = client.post(
                f"/api/tasks/{task_id}/annotations/",
                params={"format": "CVAT 1.1"},
                files={"annotation_file": ("annotations.xml", document, "application/xml")},
            )
            wait_for_request(client, expect(sent, 202).json()["rq_id"], TIMEOUT, 0.2)

        imported, _ = measured(meter, "tag import", import_tags)
        tags = client.get(f"/api/tasks/{task_id}/annotations/").json()["tags"]
        assert len(tags) == args.frames, f"{len(tags)} tags were imported"
        assert {tag["frame"] for tag in tags} == set(range(args.frames))
    return upload, media, imported


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"frames: {args.frames:,}, segment size: {args.segment_size or 'one job'}")
    document = tags_xml(args.frames)
    with (
        temp_data_dir("plm-bench-tags-") as data_dir,
        running(data_dir, database_url=args.database_url) as server,
        psycopg.connect(server.database_url, autocommit=True) as db,
    ):
        meter = CpuMeter(server, db)
        try:
            phases = run_phases(server.url, meter, args, document)
        except Exception:
            print(f"server log:\n{server.log_tail()}", file=sys.stderr)
            raise
        report(args, *phases)  # before the data dir (400,000 files) is removed
    return 0


def report(args: argparse.Namespace, upload: Phase, media: Phase, imported: Phase) -> None:
    print(f"task creation: {upload.wall + media.wall:8.1f} s  "
          f"(upload {upload.wall:.1f} s, media {media.wall:.1f} s; "
          f"{args.frames / (upload.wall + media.wall):,.0f} frames/s)")  # fmt: skip
    print(f"tag import:    {imported.wall:8.1f} s  ({args.frames / imported.wall:,.0f} tags/s)")
    print("cpu (user+sys, s):  phase        server  postgres   nats")
    for phase in (upload, media, imported):
        pg = "-" if phase.postgres_cpu is None else f"{phase.postgres_cpu:.1f}"
        nats = "-" if phase.nats_cpu is None else f"{phase.nats_cpu:.1f}"
        print(f"                    {phase.name:<12} {phase.server_cpu:6.1f}  {pg:>8}  {nats:>5}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
