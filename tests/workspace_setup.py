"""What the browser tests share: the team's labels, a street-like frame, tasks with a job,
and mouse and wait helpers that speak in image coordinates."""

from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page

from tests.browser import SignedInPage, sign_in, to_client
from tests.conftest import register
from tests.live_server import LiveServer
from tests.task_setup import wait_for_request

PASSWORD = "secret-pass-1"
SCREENSHOTS = Path(__file__).parent / "screenshots"
LABELS = [
    {
        "name": "car",
        "color": "#ff6a4d",
        "attributes": [
            {
                "name": "color",
                "mutable": True,
                "input_type": "select",
                "values": ["red", "blue"],
                "default_value": "red",
            }
        ],
    },
    {"name": "person", "color": "#33ddff"},
]


def write_scene(path: Path, shift: int) -> Path:
    """A 640x480 street-like frame (sky, road, buildings, two cars), shifted by `shift` px."""
    rows = np.linspace(0, 1, 480)[:, None, None]
    sky = np.array([235, 206, 160]) * (1 - rows) + np.array([120, 120, 110]) * rows
    image = np.broadcast_to(sky, (480, 640, 3)).astype(np.uint8).copy()
    cv2.rectangle(image, (0, 300), (640, 480), (80, 80, 85), -1)
    for x, height, color in ((20, 180, 150), (170, 230, 120), (380, 160, 170), (520, 210, 135)):
        cv2.rectangle(image, (x, 300 - height), (x + 120, 300), (color, color - 20, color - 40), -1)
    cv2.rectangle(image, (120 + shift, 330), (230 + shift, 390), (40, 40, 200), -1)
    cv2.rectangle(image, (320 - shift, 360), (450 - shift, 430), (200, 120, 30), -1)
    cv2.line(image, (0, 400), (640, 400), (230, 230, 230), 3)
    assert cv2.imwrite(str(path), image)
    return path


def new_job(owner: httpx.Client, folder: Path, assignee: httpx.Client | None = None) -> int:
    """A task of three 640x480 frames owned by `owner`; its one job assigned to `assignee`."""
    created = owner.post("/api/tasks", json={"name": "street", "labels": LABELS})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    paths = [
        write_scene(folder / f"{name}.png", shift)
        for name, shift in (("a", 0), ("b", 8), ("c", 16))
    ]
    files = [
        (f"client_files[{i}]", (path.name, path.read_bytes(), "image/png"))
        for i, path in enumerate(paths)
    ]
    uploaded = owner.post(f"/api/tasks/{task_id}/data", files=files, data={"image_quality": "80"})
    assert uploaded.status_code == 202, uploaded.text
    assert wait_for_request(owner, uploaded.json()["rq_id"])["status"] == "finished"
    job_id = owner.get("/api/jobs", params={"task_id": task_id}).json()["results"][0]["id"]
    if assignee is not None:
        me = assignee.get("/api/users/self").json()["id"]
        assert owner.patch(f"/api/jobs/{job_id}", json={"assignee": me}).status_code == 200
    return job_id


def forget_offline_errors(signed: SignedInPage) -> None:
    """The browser logs each reconnect tried while offline; those are expected."""
    signed.errors[:] = [e for e in signed.errors if "ERR_INTERNET_DISCONNECTED" not in e]


def person(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], name: str
) -> SignedInPage:
    signed = sign_in(browser, server.url, name, PASSWORD)
    pages.append(signed)
    return signed


def annotations(client: httpx.Client, job_id: int, **params: object) -> dict:
    response = client.get(f"/api/jobs/{job_id}/annotations", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*to_client(page, *start))
    page.mouse.down()
    page.mouse.move(*to_client(page, *end), steps=6)
    page.mouse.up()


def click(page: Page, x: float, y: float) -> None:
    page.mouse.click(*to_client(page, x, y))


def saved(page: Page) -> None:
    page.wait_for_selector("#saving[data-pending='0']")


def tool(page: Page, name: str) -> None:
    page.click(f"button[data-tool={name}]")


def draw_box(page: Page, x1: float, y1: float, x2: float, y2: float) -> None:
    tool(page, "rectangle")
    drag(page, (x1, y1), (x2, y2))
    saved(page)
    tool(page, "select")


def wait_shown(page: Page, predicate: str) -> None:
    """Waits until `predicate` (JS over `objects`, the drawn objects) holds on the page."""
    page.wait_for_function(
        f"(() => {{ const objects = window.__palimpsest.workspace.viewer.objects; return {predicate}; }})()"
    )


def near(actual: list[float], expected: list[float], tolerance: float = 1.5) -> bool:
    # Chromium rounds mouse positions to whole screen pixels, and a frame is shown at about
    # 1.4 screen pixels per image pixel: a drawn, then dragged point may be off by about one.
    return len(actual) == len(expected) and all(
        abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)
    )


@pytest.fixture(scope="module")
def alice(server: LiveServer) -> httpx.Client:
    return register(server, "alice", PASSWORD)


@pytest.fixture(scope="module")
def bob(server: LiveServer) -> httpx.Client:
    return register(server, "bob", PASSWORD)


@pytest.fixture
def job(alice: httpx.Client, bob: httpx.Client, tmp_path: Path) -> int:
    """A three-frame task of Alice's whose one job is Bob's."""
    return new_job(alice, tmp_path, assignee=bob)
