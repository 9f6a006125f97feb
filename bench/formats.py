"""Dataset formats: our codecs against Datumaro's, and whole export/import requests.

What it measures, on a task generated in memory (1,000 frames of 1280x720, 50,000 shapes:
25,000 boxes, 12,000 polygons of 8 points, 7,500 points shapes, 500 small masks and 100 box
tracks of 50 visible frames with a keyframe every 10):

    codec   for CVAT for images 1.1, COCO 1.0 and YOLO 1.1: our writer from the annotation
            objects in memory to the files (an uncompressed ZIP in memory), our reader from
            those files back to annotation objects; then, from the same files (extracted to
            a folder), Datumaro 1.13 reading them (`Dataset.import_from` and a walk over every
            item) and writing them (`Dataset.export`, no media). Each the fastest of
            `--repeat` runs (3). Seconds, input shapes/s and the ratio Datumaro/ours (how
            many times faster ours is).                                goal: ours >= 3x
    request a real `palimpsest serve` (embedded PostgreSQL and NATS in a temp dir): a task of
            1,000 small images with the same 50,000 shapes (PUT in one request), exported
            without images, each export imported into an empty task; timed from the POST to
            its /api/requests entry finishing.          goals: export < 2 s, import < 3 s

Datumaro pins opencv < 5, so it runs in its own venv, bench/.venv-datumaro, made on first use
(`python3 -m venv` + `pip install datumaro==1.13.*`) and driven in a subprocess; where it
cannot be installed the benchmark says so and measures our half alone.

    .venv/bin/python bench/formats.py --quick   # 100 frames, 5,000 shapes: a fast check
    .venv/bin/python bench/formats.py           # the full benchmark
    .venv/bin/python bench/formats.py --no-server   # the codecs only
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import numpy as np
from harness import (
    AUTH,
    create_task,
    expect,
    make_images,
    running,
    temp_data_dir,
    upload_images,
    wait_for_request,
)

from core.annotations import LabeledData, Shape, Track, TrackedShape
from core.labels import LabelSpec
from workers.formats import masks
from workers.formats.dataset import FrameInfo, TaskDataset
from workers.formats.registry import find_exporter, find_importer

HERE = Path(__file__).resolve().parent
DATUMARO_VENV = HERE / ".venv-datumaro"
DATUMARO_REQUIREMENT = "datumaro==1.13.*"
CAR, PERSON = 1, 2
GOAL_RATIO = 3.0
GOAL_EXPORT_S, GOAL_IMPORT_S = 2.0, 3.0


@dataclass(frozen=True)
class Codec:
    """A format as we name it both ways and as Datumaro names it."""

    title: str
    exporter: str
    importer: str
    datumaro: str


CODECS = [
    Codec("CVAT for images", "CVAT for images 1.1", "CVAT 1.1", "cvat"),
    Codec("COCO", "COCO 1.0", "COCO 1.0", "coco_instances"),
    Codec("YOLO", "YOLO 1.1", "YOLO 1.1", "yolo"),
]


@dataclass(frozen=True)
class Scale:
    frames: int
    boxes: int
    polygons: int
    points: int
    masks: int
    tracks: int
    track_length: int = 50
    key_every: int = 10

    @property
    def shapes(self) -> int:
        plain = self.boxes + self.polygons + self.points + self.masks
        return plain + self.tracks * self.track_length


FULL = Scale(frames=1000, boxes=25_000, polygons=12_000, points=7_500, masks=500, tracks=100)
QUICK = Scale(frames=100, boxes=2_500, polygons=1_200, points=750, masks=50, tracks=10)


# ------------------------------------------------------------------------------ the task


def labels() -> list[LabelSpec]:
    return [
        LabelSpec(id=CAR, name="car", color="#ff0000", type="any"),
        LabelSpec(id=PERSON, name="person", color="#00ff00", type="any"),
    ]


def generate(scale: Scale, width: int, height: int, seed: int = 7) -> LabeledData:
    """The benchmark's annotations on frames of width x height, the same for every seed."""
    rng = np.random.default_rng(seed)
    shapes: list[Shape] = []

    def frame() -> int:
        return int(rng.integers(0, scale.frames))

    def label() -> int:
        return CAR if rng.random() < 0.6 else PERSON

    for _ in range(scale.boxes):
        x, y = rng.uniform(0, width - 40), rng.uniform(0, height - 40)
        w, h = rng.uniform(4, 40, 2)
        shapes.append(Shape("rectangle", label(), frame(), _rounded([x, y, x + w, y + h])))
    for _ in range(scale.polygons):
        cx, cy = rng.uniform(30, width - 30), rng.uniform(30, height - 30)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 8))
        radii = rng.uniform(5, 25, 8)
        xy = np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])
        shapes.append(Shape("polygon", label(), frame(), _rounded(xy.reshape(-1))))
    for _ in range(scale.points):
        xy = np.column_stack([rng.uniform(0, width, 3), rng.uniform(0, height, 3)])
        shapes.append(Shape("points", PERSON, frame(), _rounded(xy.reshape(-1))))
    for _ in range(scale.masks):
        left, top = int(rng.integers(0, width - 24)), int(rng.integers(0, height - 24))
        bitmap = (rng.random((16, 20)) < 0.7).astype(np.uint8)
        bitmap[0, 0] = 1
        points = masks.bitmap_to_cvat(bitmap, left, top)
        assert points is not None
        shapes.append(Shape("mask", CAR, frame(), points))
    tracks = [_track(rng, scale, width, height) for _ in range(scale.tracks)]
    return LabeledData(shapes=shapes, tracks=tracks)


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(float(v), 2) for v in values]


def _track(rng: np.random.Generator, scale: Scale, width: int, height: int) -> Track:
    start = int(rng.integers(0, scale.frames - scale.track_length))
    keys = []
    for offset in range(0, scale.track_length, scale.key_every):
        x, y = rng.uniform(0, width - 60), rng.uniform(0, height - 60)
        points = _rounded([x, y, x + 30, y + 20])
        keys.append(TrackedShape("rectangle", start + offset, points))
    last = keys[-1]
    end = start + scale.track_length
    keys.append(TrackedShape("rectangle", end - 1, list(last.points)))
    keys.append(TrackedShape("rectangle", end, list(last.points), outside=True))
    return Track(label_id=CAR, frame=start, shapes=keys)


def dataset(scale: Scale, width: int = 1280, height: int = 720) -> TaskDataset:
    frames = [FrameInfo(i, f"frame_{i:06d}.jpg", width, height) for i in range(scale.frames)]
    return TaskDataset(
        name="formats bench",
        labels=labels(),
        frames=frames,
        annotations=generate(scale, width, height),
    )


# ------------------------------------------------------------------------------ codecs


@dataclass
class Timing:
    """Fastest wall seconds and fastest CPU seconds (of the process doing it), each way."""

    write: float
    read: float
    write_cpu: float
    read_cpu: float


def ours(codec: Codec, task: TaskDataset, folder: Path, repeat: int) -> tuple[Timing, Path]:
    """Our write (to an uncompressed ZIP in memory) and read (of that file) of one format,
    each the fastest of ``repeat`` runs."""
    exporter = find_exporter(codec.exporter).exporter
    importer = find_importer(codec.importer).importer
    assert exporter is not None and importer is not None
    writes, reads, write_cpus, read_cpus = [], [], [], []
    path = folder / f"{codec.datumaro}.zip"
    for _ in range(repeat):
        buffer = io.BytesIO()
        started, cpu = time.perf_counter(), time.process_time()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            exporter(task, archive, images=None)
        writes.append(time.perf_counter() - started)
        write_cpus.append(time.process_time() - cpu)
        path.write_bytes(buffer.getvalue())
        started, cpu = time.perf_counter(), time.process_time()
        read_back = importer(path, task.labels, task.frames)
        reads.append(time.perf_counter() - started)
        read_cpus.append(time.process_time() - cpu)
        assert read_back.shapes or read_back.tracks, f"{codec.title}: nothing read back"
        del read_back
    return Timing(min(writes), min(reads), min(write_cpus), min(read_cpus)), path


DATUMARO_SCRIPT = """
import json, sys, time
import datumaro as dm

results = []
for job in json.load(open(sys.argv[1])):
    options = {}
    if job["image_info"]:
        options["image_info"] = {k: tuple(v) for k, v in job["image_info"].items()}
    reads, writes, read_cpus, write_cpus = [], [], [], []
    for _ in range(int(sys.argv[2])):
        started, cpu = time.perf_counter(), time.process_time()
        dataset = dm.Dataset.import_from(job["path"], job["format"], **options)
        annotations = sum(len(item.annotations) for item in dataset)
        reads.append(time.perf_counter() - started)
        read_cpus.append(time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        dataset.export(job["out"], job["format"], save_media=False)
        writes.append(time.perf_counter() - started)
        write_cpus.append(time.process_time() - cpu)
        del dataset
    results.append({"read": min(reads), "write": min(writes), "read_cpu": min(read_cpus),
                    "write_cpu": min(write_cpus), "annotations": annotations})
print(json.dumps(results))
"""


def datumaro_python() -> Path | None:
    """The Datumaro venv's python, made on first use; None (and why, printed) if impossible."""
    python = DATUMARO_VENV / "bin" / "python"
    check = [str(python), "-c", "import datumaro"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"making {DATUMARO_VENV} with {DATUMARO_REQUIREMENT} (once)...", flush=True)
    steps = [
        ["python3", "-m", "venv", str(DATUMARO_VENV)],
        [str(DATUMARO_VENV / "bin" / "pip"), "install", "-q", DATUMARO_REQUIREMENT],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"Datumaro cannot be installed, its half is skipped: {done.stderr[-500:]}")
            return None
    return python if subprocess.run(check, capture_output=True).returncode == 0 else None


def datumaro(python: Path, jobs: list[dict], repeat: int) -> list[Timing]:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as listing:
        json.dump(jobs, listing)
        listing.flush()
        done = subprocess.run(
            [str(python), "-c", DATUMARO_SCRIPT, listing.name, str(repeat)],
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise RuntimeError(f"Datumaro failed: {done.stderr[-2000:]}")
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return [Timing(r["write"], r["read"], r["write_cpu"], r["read_cpu"]) for r in results]


PLACEHOLDER_FOLDERS = {
    "cvat": "images",
    "coco_instances": "images/default",
    "yolo": "obj_train_data",
}


def _placeholder_images(folder: Path, fmt: str, frames: Sequence[FrameInfo]) -> None:
    """Empty files where Datumaro looks for the images: its CVAT reader refuses a frame whose
    file is missing; sizes come from the annotations, so the files are never read."""
    images = folder / PLACEHOLDER_FOLDERS[fmt]
    images.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        (images / frame.name).touch()


def run_codecs(scale: Scale, repeat: int) -> None:
    task = dataset(scale)
    print(f"codec: {scale.frames} frames, {scale.shapes} shapes "
          f"({scale.tracks} tracks of {scale.track_length} frames)")  # fmt: skip
    python = datumaro_python()
    with tempfile.TemporaryDirectory(prefix="formats-bench-") as temp:
        folder = Path(temp)
        timings, jobs = [], []
        for codec in CODECS:
            timing, archive = ours(codec, task, folder, repeat)
            timings.append(timing)
            extracted = folder / codec.datumaro
            with zipfile.ZipFile(archive) as opened:
                opened.extractall(extracted)
            _placeholder_images(extracted, codec.datumaro, task.frames)
            image_info = {}
            if codec.datumaro == "yolo":
                image_info = {f.name.rsplit(".", 1)[0]: [f.height, f.width] for f in task.frames}
            out = str(folder / f"{codec.datumaro}-out")
            jobs.append(
                {
                    "format": codec.datumaro,
                    "path": str(extracted),
                    "out": out,
                    "image_info": image_info,
                }
            )
        theirs = datumaro(python, jobs, repeat) if python else [None] * len(CODECS)
    print(f"  (load average {os.getloadavg()[0]:.1f}; wall seconds, then CPU seconds of the "
          "process alone, which moves less with the load)")  # fmt: skip
    print(
        f"  {'format':<16} {'':<6} {'ours s':>8} {'shapes/s':>10} {'Datumaro s':>11} {'ratio':>7}"
        f"      {'ours cpu':>9} {'Datumaro cpu':>13} {'ratio':>7}"
    )
    for codec, mine, other in zip(CODECS, timings, theirs, strict=True):
        for what in ("write", "read"):
            seconds = getattr(mine, what)
            line = f"  {codec.title:<16} {what:<6} {seconds:8.3f} {scale.shapes / seconds:10,.0f}"
            if other is not None:
                theirs_s = getattr(other, what)
                ratio = theirs_s / seconds
                verdict = "ok" if ratio >= GOAL_RATIO else "MISSED"
                line += f" {theirs_s:11.3f} {ratio:6.1f}x {verdict:<6}"
                cpu, theirs_cpu = getattr(mine, f"{what}_cpu"), getattr(other, f"{what}_cpu")
                line += f" {cpu:9.3f} {theirs_cpu:13.3f} {theirs_cpu / cpu:6.1f}x"
            print(line, flush=True)


# ------------------------------------------------------------------------------ requests


def run_requests(scale: Scale) -> None:
    width, height = 320, 240
    data = generate(scale, width, height)
    print(f"request: {scale.frames} frames of {width}x{height}, {scale.shapes} shapes")
    images = make_images(scale.frames, (width, height), formats=(".jpg",), stamp=False)
    with temp_data_dir("formats-bench-") as data_dir, running(data_dir) as server:
        client = httpx.Client(base_url=server.url, auth=AUTH, timeout=300)
        source = _task_with_images(client, "source", images)
        ids = _label_ids(client, source)
        body = msgspec.json.encode(_relabelled(data, ids))
        expect(
            client.put(f"/api/tasks/{source}/annotations/", content=body,
                       headers={"Content-Type": "application/json"}), 200,
        )  # fmt: skip
        for codec in CODECS:
            exported, export_s = _timed_export(client, source, codec.exporter)
            target = _task_with_images(client, f"target {codec.title}", images)
            import_s = _timed_import(client, target, codec.importer, exported)
            count = _shape_count(client, target)
            print(
                f"  {codec.title:<16} export {export_s:6.2f} s ({_goal(export_s, GOAL_EXPORT_S)}) "
                f"import {import_s:6.2f} s ({_goal(import_s, GOAL_IMPORT_S)}), "
                f"{len(exported) / 1e6:.1f} MB, {count} shapes imported",
                flush=True,
            )


def _goal(seconds: float, limit: float) -> str:
    return f"goal < {limit:.0f} s " + ("ok" if seconds < limit else "MISSED")


def _task_with_images(client: httpx.Client, name: str, images: list) -> int:
    task_id = create_task(client, name, segment_size=max(len(images) // 4, 1))
    wait_for_request(client, upload_images(client, task_id, images, image_quality=70))
    return task_id


def _label_ids(client: httpx.Client, task_id: int) -> dict[int, int]:
    found = expect(client.get("/api/labels", params={"task_id": task_id}), 200).json()
    by_name = {label["name"]: label["id"] for label in found["results"]}
    return {CAR: by_name["car"], PERSON: by_name["person"]}


def _relabelled(data: LabeledData, ids: dict[int, int]) -> LabeledData:
    replace = msgspec.structs.replace
    return LabeledData(
        shapes=[replace(s, label_id=ids[s.label_id]) for s in data.shapes],
        tracks=[replace(t, label_id=ids[t.label_id]) for t in data.tracks],
    )


def _timed_export(client: httpx.Client, task_id: int, fmt: str) -> tuple[bytes, float]:
    started = time.perf_counter()
    sent = client.post(f"/api/tasks/{task_id}/dataset/export", params={"format": fmt})
    status, _ = wait_for_request(client, expect(sent, 202).json()["rq_id"], interval=0.02)
    seconds = time.perf_counter() - started
    return expect(client.get(status["result_url"]), 200).content, seconds


def _timed_import(client: httpx.Client, task_id: int, fmt: str, archive: bytes) -> float:
    started = time.perf_counter()
    sent = client.post(
        f"/api/tasks/{task_id}/annotations/",
        params={"format": fmt},
        files={"annotation_file": ("dataset.zip", archive, "application/zip")},
    )
    wait_for_request(client, expect(sent, 202).json()["rq_id"], interval=0.02)
    return time.perf_counter() - started


def _shape_count(client: httpx.Client, task_id: int) -> int:
    data = expect(client.get(f"/api/tasks/{task_id}/annotations/"), 200).json()
    return len(data["shapes"]) + sum(len(t["shapes"]) for t in data["tracks"])


# ------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller, a fast check")
    parser.add_argument("--no-server", action="store_true", help="measure the codecs only")
    parser.add_argument("--no-codecs", action="store_true", help="measure the requests only")
    parser.add_argument(
        "--repeat", type=int, default=3, help="codec runs each side; the fastest counts"
    )
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    steps: list[Callable[[Scale], None]] = []
    if not args.no_codecs:
        steps.append(lambda scale: run_codecs(scale, args.repeat))
    if not args.no_server:
        steps.append(run_requests)
    for step in steps:
        step(scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
