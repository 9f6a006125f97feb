"""The job workspace in real Chromium: two people on one job, every drawing tool, undo,
time travel, reconnects and conflicts, checked against the REST API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.browser import SignedInPage, open_job, to_client
from tests.images import write_images
from tests.live_server import LiveServer
from tests.task_setup import wait_for_request
from tests.workspace_setup import (
    SCREENSHOTS,
    alice,
    annotations,
    bob,
    click,
    drag,
    draw_box,
    forget_offline_errors,
    job,
    near,
    person,
    saved,
    tool,
    wait_shown,
)

__all__ = ["alice", "bob", "job"]  # fixtures shared by the browser tests


def test_two_people_edit_one_job_live_and_undo_only_their_own(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], alice: httpx.Client, job: int
) -> None:
    a = open_job(person(browser, server, pages, "alice"), job)
    b = open_job(person(browser, server, pages, "bob"), job)
    a.wait_for_selector("#members li[data-user=bob]")

    draw_box(a, 115, 325, 235, 395)
    (box_a,) = [s for s in annotations(alice, job)["shapes"]]
    wait_shown(b, f"objects.some((o) => o.id === {box_a['id']})")

    draw_box(b, 315, 355, 455, 435)
    box_b = next(s for s in annotations(alice, job)["shapes"] if s["id"] != box_a["id"])
    wait_shown(a, f"objects.some((o) => o.id === {box_b['id']})")

    # Bob's cursor and selection show on Alice's page.
    b.mouse.move(*to_client(b, 500, 400))
    a.wait_for_function(
        "window.__palimpsest.workspace.viewer.cursors.some((c) => c.name === 'bob'"
        " && Math.abs(c.x - 500) < 2 && Math.abs(c.y - 400) < 2)"
    )
    assert "frame 0" in a.inner_text("#members li[data-user=bob]")

    # Both move their own box at once; both moves survive.
    click(a, 175, 360)
    click(b, 385, 395)
    a.mouse.move(*to_client(a, 175, 360))
    b.mouse.move(*to_client(b, 385, 395))
    a.mouse.down()
    b.mouse.down()
    a.mouse.move(*to_client(a, 180, 362), steps=4)
    b.mouse.move(*to_client(b, 375, 395), steps=4)
    a.mouse.up()
    b.mouse.up()
    saved(a)
    saved(b)
    a.wait_for_selector(f"#members li[data-user=bob]:has-text('selected #{box_b['id']}')")
    shapes = {s["id"]: s for s in annotations(alice, job)["shapes"]}
    assert near(shapes[box_a["id"]]["points"], [120, 327, 240, 397])
    assert near(shapes[box_b["id"]]["points"], [305, 355, 445, 435])
    for page in (a, b):
        wait_shown(
            page,
            f"objects.find((o) => o.id === {box_a['id']})?.shape.points[0] > 118"
            f" && objects.find((o) => o.id === {box_b['id']})?.shape.points[0] < 307",
        )

    # Alice undoes twice: her move, then her box. Bob's box and move stay.
    a.keyboard.press("Escape")
    a.keyboard.press("Control+z")
    saved(a)
    a.click("#undo")
    saved(a)
    shapes = annotations(alice, job)["shapes"]
    assert [s["id"] for s in shapes] == [box_b["id"]]
    assert near(shapes[0]["points"], [305, 355, 445, 435])
    wait_shown(b, f"objects.length === 1 && objects[0].id === {box_b['id']}")

    # Redo brings her box back, for both.
    a.keyboard.press("Control+Shift+z")
    saved(a)
    assert {s["id"] for s in annotations(alice, job)["shapes"]} == {box_a["id"], box_b["id"]}
    wait_shown(b, "objects.length === 2")

    SCREENSHOTS.mkdir(exist_ok=True)
    click(a, 175, 360)
    a.mouse.move(*to_client(a, 260, 330))
    b.wait_for_function(
        "window.__palimpsest.workspace.viewer.cursors.some((c) => c.name === 'alice')"
    )
    b.mouse.move(*to_client(b, 470, 250))
    a.wait_for_function(
        "window.__palimpsest.workspace.viewer.cursors.some((c) => c.name === 'bob' && c.x > 465)"
    )
    a.screenshot(path=str(SCREENSHOTS / "workspace-two-users.png"))


def test_each_drawing_tool_lands_its_points(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], alice: httpx.Client, job: int
) -> None:
    page = open_job(person(browser, server, pages, "alice"), job)

    tool(page, "rectangle")
    drag(page, (50, 60), (150, 140))
    tool(page, "ellipse")
    drag(page, (300, 100), (340, 70))
    tool(page, "polygon")
    for x, y in [(400, 300), (500, 300), (450, 380)]:
        click(page, x, y)
    click(page, 400, 300)  # on the first vertex: closes it
    tool(page, "polyline")
    for x, y in [(50, 400), (120, 420), (200, 380)]:
        click(page, x, y)
    page.keyboard.press("Enter")
    tool(page, "points")
    for x, y in [(600, 50), (610, 70)]:
        click(page, x, y)
    page.keyboard.press("n")
    saved(page)

    shapes = {s["type"]: s for s in annotations(alice, job)["shapes"]}
    assert sorted(shapes) == ["ellipse", "points", "polygon", "polyline", "rectangle"]
    assert near(shapes["rectangle"]["points"], [50, 60, 150, 140])
    assert near(shapes["ellipse"]["points"], [300, 100, 340, 70])
    assert near(shapes["polygon"]["points"], [400, 300, 500, 300, 450, 380])
    assert near(shapes["polyline"]["points"], [50, 400, 120, 420, 200, 380])
    assert near(shapes["points"]["points"], [600, 50, 610, 70])
    assert all(s["frame"] == 0 and s["label_id"] for s in shapes.values())
    assert shapes["rectangle"]["attributes"][0]["value"] == "red"


def test_reshaping_rotating_and_the_details_panel(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], alice: httpx.Client, job: int
) -> None:
    page = open_job(person(browser, server, pages, "alice"), job)
    draw_box(page, 100, 100, 200, 200)
    click(page, 150, 150)
    drag(page, (200, 200), (240, 260))  # the bottom-right corner handle
    saved(page)
    (box,) = annotations(alice, job)["shapes"]
    assert near(box["points"], [100, 100, 240, 260])

    # The rotation handle sits 30 screen pixels above the top edge's middle.
    handle = page.evaluate(
        "(() => { const w = window.__palimpsest.workspace; const d = w.selectedDrawn();"
        " return w.viewer.toClient(170, 100 - w.viewer.rotationReach()); })()"
    )
    right = to_client(page, 300, 180)
    page.mouse.move(*handle)
    page.mouse.down()
    page.mouse.move(*right, steps=5)
    page.mouse.up()
    saved(page)
    (box,) = annotations(alice, job)["shapes"]
    assert 85 < box["rotation"] < 95

    page.select_option("#details [data-attribute=color] select", "blue")
    page.check("#object-occluded")
    page.click("#details button:has-text('To front')")
    saved(page)
    (box,) = annotations(alice, job)["shapes"]
    assert box["attributes"] == [{"spec_id": box["attributes"][0]["spec_id"], "value": "blue"}]
    assert box["occluded"] is True
    assert box["z_order"] == 2

    page.select_option("#object-label", label="person")
    saved(page)
    (box,) = annotations(alice, job)["shapes"]
    person_label = next(
        label["id"]
        for label in alice.get("/api/labels", params={"job_id": job}).json()["results"]
        if label["name"] == "person"
    )
    assert box["label_id"] == person_label and box["attributes"] == []

    # Copy and paste on the next frame, then a tag, then delete the original.
    page.keyboard.press("Control+c")
    page.keyboard.press("f")
    page.wait_for_selector(".workspace[data-frame='1']")
    page.keyboard.press("Control+v")
    page.click("#add-tag")
    saved(page)
    data = annotations(alice, job)
    pasted = next(s for s in data["shapes"] if s["frame"] == 1)
    assert near(pasted["points"], box["points"]) and pasted["rotation"] == box["rotation"]
    assert [t["frame"] for t in data["tags"]] == [1]
    page.keyboard.press("d")
    page.wait_for_selector(".workspace[data-frame='0']")
    click(page, 170, 180)
    page.keyboard.press("Delete")
    saved(page)
    assert [s["frame"] for s in annotations(alice, job)["shapes"]] == [1]


def test_tracks_keyframes_interpolation_and_outside(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], alice: httpx.Client, job: int
) -> None:
    page = open_job(person(browser, server, pages, "alice"), job)
    page.check("#track-mode")
    draw_box(page, 100, 100, 200, 200)
    page.keyboard.press("f")
    page.keyboard.press("f")
    page.wait_for_selector(".workspace[data-frame='2']")
    click(page, 150, 150)
    drag(page, (150, 150), (350, 250))  # moved by (200, 100) on frame 2: a new keyframe
    saved(page)
    (track,) = annotations(alice, job)["tracks"]
    assert [s["frame"] for s in track["shapes"]] == [0, 2]
    assert near(track["shapes"][1]["points"], [300, 200, 400, 300])

    page.keyboard.press("d")
    page.wait_for_selector(".workspace[data-frame='1']")
    wait_shown(page, "objects.length === 1 && Math.abs(objects[0].shape.points[0] - 200) < 1")
    assert page.is_visible("#objects li[data-kind=track]")

    page.keyboard.press("f")
    page.wait_for_selector(".workspace[data-frame='2']")
    click(page, 350, 250)
    page.keyboard.press("o")  # outside from frame 2 on
    saved(page)
    (track,) = annotations(alice, job)["tracks"]
    assert track["shapes"][-1]["frame"] == 2 and track["shapes"][-1]["outside"] is True
    wait_shown(page, "objects.length === 0")


def test_the_time_slider_shows_the_job_as_it_was(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], alice: httpx.Client, job: int
) -> None:
    page = open_job(person(browser, server, pages, "alice"), job)
    draw_box(page, 100, 100, 200, 200)
    version_one_box = annotations(alice, job)
    history = alice.get(f"/api/jobs/{job}/history").json()["results"]
    past = history[-1]["version"]
    draw_box(page, 300, 300, 400, 400)
    click(page, 150, 150)
    drag(page, (150, 150), (180, 150))
    saved(page)

    page.eval_on_selector(
        "#time-slider",
        "(slider, v) => { slider.value = v; slider.dispatchEvent(new Event('change')); }",
        past,
    )
    page.wait_for_selector(".workspace.past")
    expected = annotations(alice, job, at_version=past)["shapes"]
    assert expected == version_one_box["shapes"]
    wait_shown(page, f"objects.length === {len(expected)}")
    shown = page.evaluate(
        "window.__palimpsest.workspace.viewer.objects.map((o) => ({id: o.id, points: o.shape.points}))"
    )
    assert shown == [{"id": s["id"], "points": s["points"]} for s in expected]
    assert f"Version {past}" in page.inner_text("#time-label")

    # Read-only: a drag there changes nothing.
    drag(page, (150, 150), (250, 250))
    assert annotations(alice, job)["shapes"][0]["points"][0] == pytest.approx(130, abs=0.6)

    page.click("#back-to-live")
    page.wait_for_selector(".workspace:not(.past)")
    wait_shown(page, "objects.length === 2")

    # A history entry's version link travels there too.
    page.click(f"#history li[data-version='{past}'] button")
    page.wait_for_selector(".workspace.past")
    wait_shown(page, "objects.length === 1")


def test_edits_made_offline_are_sent_once_on_reconnect(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], alice: httpx.Client, job: int
) -> None:
    signed = person(browser, server, pages, "alice")
    page = open_job(signed, job)
    signed.context.set_offline(True)
    page.evaluate("window.__palimpsest.workspace.room.drop()")
    page.wait_for_selector("#connection:not([data-status=live])")
    draw_tool_offline = [(100, 100, 160, 160), (300, 100, 360, 160)]
    tool(page, "rectangle")
    for x1, y1, x2, y2 in draw_tool_offline:
        drag(page, (x1, y1), (x2, y2))
    assert page.get_attribute("#saving", "data-pending") == "2"
    assert annotations(alice, job)["shapes"] == []
    signed.context.set_offline(False)
    page.wait_for_selector("#connection[data-status=live]", timeout=15000)
    saved(page)
    forget_offline_errors(signed)
    assert len(annotations(alice, job)["shapes"]) == 2

    # A command sent just before the connection drops is resent with its id: written once.
    page.evaluate(
        "(() => { const w = window.__palimpsest.workspace;"
        " w.createShape({type: 'rectangle', points: [10, 10, 50, 50], rotation: 0});"
        " w.room.drop(); })()"
    )
    page.wait_for_selector("#connection[data-status=live]", timeout=15000)
    saved(page)
    assert len(annotations(alice, job)["shapes"]) == 3
    page.wait_for_timeout(300)
    assert len(annotations(alice, job)["shapes"]) == 3


def test_a_conflict_shows_theirs_and_lets_me_reapply_mine(
    browser: Browser,
    server: LiveServer,
    pages: list[SignedInPage],
    alice: httpx.Client,
    bob: httpx.Client,
    job: int,
) -> None:
    signed = person(browser, server, pages, "alice")
    page = open_job(signed, job)
    draw_box(page, 100, 100, 200, 200)
    (box,) = annotations(alice, job)["shapes"]

    signed.context.set_offline(True)
    page.evaluate("window.__palimpsest.workspace.room.drop()")
    page.wait_for_selector("#connection:not([data-status=live])")
    moved = bob.patch(
        f"/api/jobs/{job}/annotations",
        params={"action": "update"},
        json={"shapes": [{**box, "points": [0, 0, 100, 100]}]},
    )
    assert moved.status_code == 200, moved.text
    click(page, 150, 150)
    drag(page, (150, 150), (250, 150))  # Alice, offline, moves the box she last saw
    signed.context.set_offline(False)
    page.wait_for_selector("#conflict", timeout=15000)
    forget_offline_errors(signed)
    assert json.loads(page.inner_text("#conflict-theirs")) == {"points": [0, 0, 100, 100]}
    assert json.loads(page.inner_text("#conflict-mine"))["points"][0] > 195
    assert annotations(alice, job)["shapes"][0]["points"] == [0, 0, 100, 100]

    page.click("#conflict-reapply")
    saved(page)
    assert near(annotations(alice, job)["shapes"][0]["points"], [200, 100, 300, 200])


SKELETON_SVG = (
    '<line x1="10" y1="10" x2="50" y2="50" data-type="edge" data-node-from="1" data-node-to="2">'
    '</line><circle r="1.5" cx="10" cy="10" data-type="element node" data-element-id="1" '
    'data-node-id="1" data-label-name="head"></circle><circle r="1.5" cx="50" cy="50" '
    'data-type="element node" data-element-id="2" data-node-id="2" data-label-name="hand"></circle>'
)


def test_cuboids_masks_and_skeletons_are_shown_moved_and_deleted(
    browser: Browser,
    server: LiveServer,
    pages: list[SignedInPage],
    alice: httpx.Client,
    tmp_path: Path,
) -> None:
    labels = [
        {"name": "box3d"},
        {
            "name": "person",
            "type": "skeleton",
            "svg": SKELETON_SVG,
            "sublabels": [{"name": "head", "type": "points"}, {"name": "hand", "type": "points"}],
        },
    ]
    created = alice.post("/api/tasks", json={"name": "kinds", "labels": labels})
    task_id = created.json()["id"]
    (path,) = write_images(tmp_path, ["k.png"], size=(640, 480))
    uploaded = alice.post(
        f"/api/tasks/{task_id}/data",
        files=[("client_files[0]", (path.name, path.read_bytes(), "image/png"))],
        data={"image_quality": "80"},
    )
    assert wait_for_request(alice, uploaded.json()["rq_id"])["status"] == "finished"
    job_id = alice.get("/api/jobs", params={"task_id": task_id}).json()["results"][0]["id"]
    found = alice.get("/api/labels", params={"job_id": job_id}).json()["results"]
    by_name = {label["name"]: label["id"] for label in found}
    for label in found:
        by_name |= {node["name"]: node["id"] for node in label["sublabels"]}
    cuboid = [100, 100, 100, 200, 200, 100, 200, 200, 220, 90, 220, 190, 320, 90, 320, 190]
    mask = [0, 400, 300, 100, 319, 119]  # a 20 x 20 box at (300, 100), all set
    body = {
        "shapes": [
            {"type": "cuboid", "label_id": by_name["box3d"], "frame": 0, "points": cuboid},
            {"type": "mask", "label_id": by_name["box3d"], "frame": 0, "points": mask},
            {
                "type": "skeleton",
                "label_id": by_name["person"],
                "frame": 0,
                "points": [],
                "elements": [
                    {
                        "type": "points",
                        "label_id": by_name["head"],
                        "frame": 0,
                        "points": [450, 300],
                    },
                    {
                        "type": "points",
                        "label_id": by_name["hand"],
                        "frame": 0,
                        "points": [500, 380],
                    },
                ],
            },
        ]
    }
    put = alice.put(f"/api/jobs/{job_id}/annotations", json=body)
    assert put.status_code == 200, put.text
    page = open_job(person(browser, server, pages, "alice"), job_id)
    wait_shown(page, "objects.length === 3")
    ids = {s["type"]: s["id"] for s in annotations(alice, job_id)["shapes"]}

    click(page, 150, 150)  # inside the cuboid
    assert page.evaluate("window.__palimpsest.workspace.selected") == ids["cuboid"]
    drag(page, (150, 150), (160, 170))
    click(page, 310, 110)  # inside the mask
    assert page.evaluate("window.__palimpsest.workspace.selected") == ids["mask"]
    drag(page, (310, 110), (330, 100))
    click(page, 450, 300)  # on the skeleton's head
    assert page.evaluate("window.__palimpsest.workspace.selected") == ids["skeleton"]
    drag(page, (450, 300), (440, 310))
    saved(page)
    shapes = {s["type"]: s for s in annotations(alice, job_id)["shapes"]}
    assert near(
        shapes["cuboid"]["points"], [v + (10 if i % 2 == 0 else 20) for i, v in enumerate(cuboid)]
    )
    assert shapes["mask"]["points"][:2] == [0, 400]
    assert near(shapes["mask"]["points"][-4:], [320, 90, 339, 109])
    heads = [e["points"] for e in shapes["skeleton"]["elements"]]
    assert near(heads[0] + heads[1], [440, 310, 490, 390])

    page.keyboard.press("Delete")
    saved(page)
    assert sorted(s["type"] for s in annotations(alice, job_id)["shapes"]) == ["cuboid", "mask"]


def test_a_rejected_edit_is_said_and_taken_back_on_the_page(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], alice: httpx.Client, job: int
) -> None:
    page = open_job(person(browser, server, pages, "alice"), job)
    draw_box(page, 100, 100, 200, 200)
    (box,) = annotations(alice, job)["shapes"]
    page.evaluate(
        f"window.__palimpsest.workspace.update({box['id']}, 'shape', {{points: [1, 2, 3]}})"
    )
    page.wait_for_selector(".toast.error:has-text('Rejected (invalid)')")
    saved(page)
    wait_shown(page, "objects.length === 1 && objects[0].shape.points.length === 4")
    assert annotations(alice, job)["shapes"][0]["points"] == box["points"]


def test_a_late_ack_never_undoes_what_a_newer_event_brought(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], alice: httpx.Client
) -> None:
    # The ack of my edit (version 10) may reach the page after the events of versions 10 and
    # 11 (someone else's edit, or their delete): the page must keep version 11's state.
    page = person(browser, server, pages, "alice").page
    kept = page.evaluate(
        """async () => {
        const { AnnotationStore } = await import("/static/app/workspace/store.js");
        const box = (x) => ({ id: 5, type: "rectangle", label_id: 1, frame: 0, points: [x, 0, 9, 9] });
        const store = new AnnotationStore();
        store.loadSnapshot({ version: 9, tags: [], shapes: [box(0)], tracks: [], revisions: { 5: 9 } });
        store.applyEvent({ version: 10, name: "AnnotationsUpdated", data: { shapes: [box(1)] } });
        store.applyEvent({ version: 11, name: "AnnotationsUpdated", data: { shapes: [box(2)] } });
        store.putAll({ shapes: [box(1)] }, 10, { unlessNewer: true });
        const updated = store.get(5).object.points[0];
        store.applyEvent({ version: 12, name: "AnnotationsDeleted", data: { shapes: [5] } });
        store.putAll({ shapes: [box(3)] }, 11, { unlessNewer: true });
        const fresh = { shapes: [{ ...box(4), id: 6 }] };
        store.putAll(fresh, 13, { unlessNewer: true });
        return [updated, store.get(5), store.get(6).object.points[0]];
    }"""
    )
    assert kept == [2, None, 4]


def test_zoom_pan_fit_and_redo_by_ctrl_y(
    browser: Browser, server: LiveServer, pages: list[SignedInPage], alice: httpx.Client, job: int
) -> None:
    page = open_job(person(browser, server, pages, "alice"), job)
    view = "(() => { const v = window.__palimpsest.workspace.viewer; return [v.scale, ...v.offset]; })()"
    scale, *_ = page.evaluate(view)
    pointer = to_client(page, 320, 240)
    page.mouse.move(*pointer)
    page.mouse.wheel(0, -100)  # zoom in at the pointer: the image point under it stays put
    page.wait_for_function(f"window.__palimpsest.workspace.viewer.scale > {scale}")
    under = page.evaluate(
        f"window.__palimpsest.workspace.viewer.toImage({pointer[0]}, {pointer[1]})"
    )
    assert near(under, [320, 240], 0.5)

    # A drag on empty space pans by the drag; Fit brings the frame back whole.
    zoomed, x, y = page.evaluate(view)
    drag(page, (320, 240), (300, 230))
    _, panned_x, panned_y = page.evaluate(view)
    assert near([panned_x - x, panned_y - y], [-20 * zoomed, -10 * zoomed], 1.5)
    page.click("#fit")
    assert page.evaluate(view)[0] == pytest.approx(scale)

    draw_box(page, 100, 100, 200, 200)
    page.keyboard.press("Control+z")
    saved(page)
    assert annotations(alice, job)["shapes"] == []
    page.keyboard.press("Control+y")
    saved(page)
    assert len(annotations(alice, job)["shapes"]) == 1
