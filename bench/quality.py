"""Quality reports: a full report from scratch and the incremental update after one edit.

A task of 1,000 frames (640x480) whose ground truth job holds every frame with 30 objects a
frame (12 rectangles, a quarter of them rotated, 6 polygons, 2 masks, 2 ellipses,
3 polylines, 3 point sets, 2 tags) and one annotation job holding the same objects
jittered by a few pixels, with about 5% relabelled, 5% left out and 5% extra.

Two measurements, each printed on its own line:

    scorer   the pure scorer in this process (workers/quality): the whole task compared from
             scratch, then one shape moved and its frame compared again     goals < 2 s, < 100 ms
    server   a real `palimpsest serve`: the ground truth job is accepted (PATCH stage/state)
             and the task report polled until it appears (the projection builds it, writing
             every frame result and conflict); then single-shape PATCHes, each polled until
             the job report shows it: edit-to-fresh-report p50 / max, without any POST

Run it from the project root:

    .venv/bin/python bench/quality.py --quick    # 100 frames
    .venv/bin/python bench/quality.py            # 1,000 frames
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
from harness import AUTH, Server, expect, temp_data_dir, upload_images, wait_for_request  # noqa: E402

from core.annotations import AnnotationState, LabeledData, Shape, Tag  # noqa: E402
from core.labels import LabelSpec  # noqa: E402
from core.quality_settings import QualitySettings  # noqa: E402
from workers.quality.comparison import FrameImage  # noqa: E402
from workers.quality.objects import LabelCatalog  # noqa: E402
from workers.quality.task_quality import JobInput, TaskQuality  # noqa: E402

WIDTH, HEIGHT = 640, 480
MS = 1000.0


def frame_objects(
    rng: np.random.Generator, frame: int, labels: Sequence[int]
) -> list[dict[str, Any]]:
    """The ground truth of one frame as CVAT JSON shapes and tags (30 objects)."""
    objects: list[dict[str, Any]] = []

    def add(kind: str, points: list[float], **extra: Any) -> None:
        label = int(rng.choice(labels))
        objects.append({"type": kind, "label_id": label, "frame": frame,
                        "points": [round(float(p), 1) for p in points], **extra})  # fmt: skip

    for index in range(12):
        x, y = rng.uniform(0, WIDTH - 80), rng.uniform(0, HEIGHT - 80)
        w, h = rng.uniform(15, 80), rng.uniform(15, 80)
        add("rectangle", [x, y, x + w, y + h], rotation=30.0 if index % 4 == 0 else 0.0)
    for _ in range(6):
        cx, cy, r = rng.uniform(40, WIDTH - 40), rng.uniform(40, HEIGHT - 40), rng.uniform(10, 35)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 6))
        add("polygon", [v for a in angles for v in (cx + r * np.cos(a), cy + r * np.sin(a))])
    for _ in range(2):
        left, top = int(rng.uniform(0, WIDTH - 30)), int(rng.uniform(0, HEIGHT - 30))
        size = 20
        add("mask", [0, size * size, left, top, left + size - 1, top + size - 1])
    for _ in range(2):
        cx, cy = rng.uniform(30, WIDTH - 30), rng.uniform(30, HEIGHT - 30)
        add("ellipse", [cx, cy, cx + rng.uniform(8, 25), cy - rng.uniform(8, 25)])
    for _ in range(3):
        x, y = rng.uniform(0, WIDTH - 100), rng.uniform(0, HEIGHT - 100)
        add("polyline", [x, y, x + 40, y + 30, x + 90, y + 10])
    for _ in range(3):
        x, y = rng.uniform(0, WIDTH - 30), rng.uniform(0, HEIGHT - 30)
        add("points", [x, y, x + 10, y + 20, x + 25, y + 5])
    for _ in range(2):
        objects.append({"label_id": int(rng.choice(labels)), "frame": frame, "_tag": True})
    return objects


def annotated(
    rng: np.random.Generator, truth: list[dict[str, Any]], labels: Sequence[int]
) -> list[dict[str, Any]]:
    """An annotator's version of the ground truth: jittered, some relabelled, missed, added."""
    result = []
    for obj in truth:
        roll = rng.uniform()
        if roll < 0.05:
            continue
        copy = dict(obj)
        if roll < 0.10:
            copy["label_id"] = int(rng.choice(labels))
        if "points" in copy and copy["type"] != "mask":
            copy["points"] = [round(p + float(rng.uniform(-2, 2)), 1) for p in copy["points"]]
        result.append(copy)
        if rng.uniform() < 0.05 and "points" in copy and copy["type"] == "rectangle":
            extra = dict(copy)
            extra["points"] = [p + 200 for p in copy["points"]]
            result.append(extra)
    return result


def as_body(objects: list[dict[str, Any]]) -> dict[str, Any]:
    tags = [{"label_id": o["label_id"], "frame": o["frame"]} for o in objects if o.get("_tag")]
    shapes = [o for o in objects if not o.get("_tag")]
    return {"tags": tags, "shapes": shapes}


def build(frames: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(7)
    labels = [1, 2, 3]
    truth: list[dict[str, Any]] = []
    for frame in range(frames):
        truth += frame_objects(rng, frame, labels)
    return truth, annotated(rng, truth, labels)


def remap(objects: list[dict[str, Any]], label_ids: dict[int, int]) -> list[dict[str, Any]]:
    return [{**o, "label_id": label_ids[o["label_id"]]} for o in objects]


# --- the pure scorer ------------------------------------------------------------------------


def state_of(objects: list[dict[str, Any]], first_id: int) -> AnnotationState:
    body = as_body(objects)
    ident = first_id
    tags, shapes = {}, {}
    for tag in body["tags"]:
        tags[ident] = Tag(label_id=tag["label_id"], frame=tag["frame"], id=ident)
        ident += 1
    for shape in body["shapes"]:
        shapes[ident] = Shape(**{**shape, "id": ident})
        ident += 1
    return AnnotationState(tags=tags, shapes=shapes)


def measure_scorer(frames: int) -> None:
    truth, annotation = build(frames)
    labels = LabelCatalog.of([LabelSpec(i, f"l{i}", "#000000", "any") for i in (1, 2, 3)])
    gt = JobInput(2, 0, frames - 1, state_of(truth, 1_000_000))
    ds_state = state_of(annotation, 1)
    started, cpu = time.perf_counter(), time.process_time()
    quality = TaskQuality(
        task_id=1, gt_job_id=2, gt_frames=list(range(frames)), labels=labels,
        settings=QualitySettings(), images=[FrameImage(WIDTH, HEIGHT)] * frames,
    )  # fmt: skip
    quality.set_ground_truth(gt)
    quality.update_job(JobInput(1, 0, frames - 1, ds_state))
    totals = quality.task_totals()
    summary = totals.report_summary(frames)
    full, full_cpu = time.perf_counter() - started, time.process_time() - cpu
    timings, cpu_timings = [], []
    shape_ids = [i for i, s in ds_state.shapes.items() if s.type == "rectangle"]
    for step in range(20):
        moved = ds_state.shapes[shape_ids[step * 37 % len(shape_ids)]]
        edited = type(moved)(**{**{f: getattr(moved, f) for f in moved.__struct_fields__},
                                "points": [p + 3 for p in moved.points]})  # fmt: skip
        ds_state = ds_state.with_objects(LabeledData(shapes=[edited]))
        started, cpu = time.perf_counter(), time.process_time()
        touched = quality.frames_of_edit(1, [LabeledData(shapes=[edited])], [])
        quality.update_job(JobInput(1, 0, frames - 1, ds_state), touched)
        quality.task_totals().report_summary(frames)
        timings.append(time.perf_counter() - started)
        cpu_timings.append(time.process_time() - cpu)
    print(
        f"scorer  {frames} frames, {len(truth)} GT / {len(annotation)} annotated objects: "
        f"full report {full:.2f} s ({full_cpu:.2f} s CPU; goal < 2 s); one edit re-scored: "
        f"p50 {statistics.median(timings) * MS:.1f} ms ({statistics.median(cpu_timings) * MS:.1f}"
        f" ms CPU), max {max(timings) * MS:.1f} ms (goal < 100 ms); "
        f"accuracy {summary['accuracy']:.3f}, "
        f"conflicts {summary['conflict_count']}"
    )


# --- the server -----------------------------------------------------------------------------


def images(count: int) -> list[tuple[str, bytes, str]]:
    result = []
    for index in range(count):
        image = np.full((HEIGHT, WIDTH, 3), index % 256, np.uint8)
        ok, encoded = cv2.imencode(".jpg", image)
        assert ok
        result.append((f"frame_{index:05d}.jpg", encoded.tobytes(), "image/jpeg"))
    return result


def task_report(client: httpx.Client, task_id: int) -> dict[str, Any] | None:
    found = client.get("/api/quality/reports", params={"task_id": task_id, "target": "task"})
    results = expect(found, 200).json()["results"]
    return results[0] if results else None


def job_report(client: httpx.Client, job_id: int) -> dict[str, Any] | None:
    results = expect(client.get("/api/quality/reports", params={"job_id": job_id}), 200).json()
    return results["results"][0] if results["results"] else None


def measure_server(frames: int) -> None:
    truth, annotation = build(frames)
    with temp_data_dir("palimpsest-bench-quality-") as data_dir:
        server = Server(data_dir)
        try:
            server.wait_ready()
            client = httpx.Client(base_url=server.url, auth=AUTH, timeout=600)
            body = {"name": "quality", "segment_size": frames,
                    "labels": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}  # fmt: skip
            task_id = int(expect(client.post("/api/tasks", json=body), 201).json()["id"])
            wait_for_request(
                client,
                upload_images(client, task_id, images(frames), image_quality=70),
                timeout=600,
            )
            labels = client.get("/api/labels", params={"task_id": task_id}).json()["results"]
            label_ids = {i + 1: label["id"] for i, label in enumerate(labels)}
            job_id = client.get("/api/jobs", params={"task_id": task_id}).json()["results"][0]["id"]
            gt = expect(client.post("/api/jobs", json={
                "type": "ground_truth", "task_id": task_id, "frame_selection_method": "manual",
                "frames": list(range(frames))}), 201).json()["id"]  # fmt: skip
            expect(
                client.put(f"/api/jobs/{gt}/annotations", json=as_body(remap(truth, label_ids))),
                200,
            )
            written = expect(
                client.put(
                    f"/api/jobs/{job_id}/annotations", json=as_body(remap(annotation, label_ids))
                ),
                200,
            ).json()
            time.sleep(1.0)  # let the projection see the PUTs (no report yet: GT not accepted)
            started = time.perf_counter()
            expect(
                client.patch(f"/api/jobs/{gt}", json={"stage": "acceptance", "state": "completed"}),
                200,
            )
            deadline = time.monotonic() + 600
            while task_report(client, task_id) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("no task report")
                time.sleep(0.01)
            full = time.perf_counter() - started
            report = task_report(client, task_id)
            assert report is not None
            started = time.perf_counter()
            rq = expect(client.post("/api/quality/reports", json={"task_id": task_id}), 202)
            post = time.perf_counter() - started
            wait_for_request(client, rq.json()["rq_id"])
            shapes = [s for s in written["shapes"] if s["type"] == "rectangle"]
            timings = []
            for step in range(20):
                before = job_report(client, job_id)
                assert before is not None
                shape = shapes[step]
                shape["points"] = [p + (300 if step % 2 == 0 else -300) for p in shape["points"]]
                started = time.perf_counter()
                expect(client.patch(f"/api/jobs/{job_id}/annotations", params={"action": "update"},
                                    json={"shapes": [shape]}), 200)  # fmt: skip
                deadline = time.monotonic() + 60
                while True:  # every refresh stamps the report anew
                    after = job_report(client, job_id)
                    if after is not None and after["created_date"] != before["created_date"]:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError("the job report did not follow the edit")
                    time.sleep(0.005)
                timings.append(time.perf_counter() - started)
            summary = report["summary"]
            print(
                f"server  {frames} frames: accept GT -> task report {full:.2f} s "
                f"({summary['conflict_count']} conflicts written, accuracy "
                f"{summary['accuracy']:.3f}); POST /api/quality/reports {post * MS:.0f} ms; "
                f"PATCH one shape -> fresh job report p50 "
                f"{statistics.median(timings) * MS:.0f} ms, max {max(timings) * MS:.0f} ms"
            )
        finally:
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 frames instead of 1,000")
    parser.add_argument("--scorer-only", action="store_true", help="skip the server part")
    args = parser.parse_args(argv)
    frames = 100 if args.quick else 1000
    measure_scorer(frames)
    if not args.scorer_only:
        measure_server(frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
