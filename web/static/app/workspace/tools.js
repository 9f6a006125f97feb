// Mouse interaction on the viewer: selecting, moving, reshaping and rotating objects,
// drawing new shapes, panning and zooming. Edits go to `workspace` when the mouse is released.

import {
  hits,
  rotationTowards,
  translated,
  withHandleAt,
} from "./geometry.js";

const MIN_POINTS = { polygon: 3, polyline: 2, points: 1 };
const CLICK_SLOP_PX = 3;

export class Interaction {
  constructor(viewer, workspace) {
    this.viewer = viewer;
    this.workspace = workspace;
    this.tool = "select"; // select | rectangle | polygon | polyline | points | ellipse
    this.drag = null;
    this.drawing = null;
    const canvas = viewer.canvas;
    canvas.addEventListener("mousedown", (e) => this.down(e));
    window.addEventListener("mousemove", (e) => this.move(e));
    window.addEventListener("mouseup", (e) => this.up(e));
    canvas.addEventListener("dblclick", (e) => this.doubleClick(e));
    canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  }

  setTool(tool) {
    this.cancelDrawing();
    this.tool = tool;
    this.viewer.canvas.dataset.tool = tool;
  }

  point(event) {
    return this.viewer.toImage(event.clientX, event.clientY);
  }

  down(event) {
    if (event.button === 1 || event.button === 2 || (event.button === 0 && event.altKey)) {
      this.drag = { mode: "pan", last: [event.clientX, event.clientY] };
      return;
    }
    if (event.button !== 0) return;
    const p = this.point(event);
    if (this.tool !== "select" && !this.workspace.readOnly) {
      this.drawDown(p, event);
      return;
    }
    const selected = this.workspace.selectedDrawn();
    if (selected && !this.workspace.readOnly) {
      const handle = this.viewer.handleAt(selected.shape, event.clientX, event.clientY);
      if (handle !== null) {
        this.startDrag(handle === "rotate" ? "rotate" : "handle", selected, p, event, handle);
        return;
      }
    }
    const hit = this.hitAt(p);
    this.workspace.select(hit ? hit.id : null);
    if (hit && !this.workspace.readOnly) this.startDrag("move", hit, p, event);
    else this.drag = { mode: "pan", last: [event.clientX, event.clientY] };
  }

  startDrag(mode, drawn, p, event, handle = null) {
    this.drag = {
      mode,
      id: drawn.id,
      start: p,
      startClient: [event.clientX, event.clientY],
      original: drawn.shape,
      shape: drawn.shape,
      handle,
      moved: false,
    };
  }

  hitAt(p) {
    const tolerance = 4 * this.viewer.pixel;
    const drawn = this.viewer.objects;
    for (let i = drawn.length - 1; i >= 0; i -= 1) {
      if (hits(drawn[i].shape, p, tolerance)) return drawn[i];
    }
    return null;
  }

  move(event) {
    const inside = event.target === this.viewer.canvas;
    const p = this.point(event);
    if (inside) this.workspace.pointerAt(p);
    const drag = this.drag;
    if (drag?.mode === "pan") {
      this.viewer.panBy(event.clientX - drag.last[0], event.clientY - drag.last[1]);
      drag.last = [event.clientX, event.clientY];
      return;
    }
    if (drag) {
      const far = Math.hypot(event.clientX - drag.startClient[0], event.clientY - drag.startClient[1]);
      if (!drag.moved && far < CLICK_SLOP_PX) return;
      if (!drag.moved) {
        drag.moved = true;
        this.viewer.beginLive(drag.id, drag.shape);
      }
      drag.shape = this.dragged(drag, p);
      this.viewer.moveLive(drag.shape);
      return;
    }
    if (this.drawing) {
      this.drawing.pointer = p;
      this.viewer.sketch = this.sketchOf(this.drawing);
      this.viewer.requestDraw();
      return;
    }
    if (inside && this.tool === "select") {
      const hit = this.hitAt(p);
      const id = hit ? hit.id : null;
      if (id !== this.viewer.hovered) {
        this.viewer.hovered = id;
        this.viewer.requestDraw();
      }
    }
  }

  dragged(drag, p) {
    if (drag.mode === "move") {
      return translated(drag.original, p[0] - drag.start[0], p[1] - drag.start[1]);
    }
    if (drag.mode === "rotate") return { ...drag.original, rotation: rotationTowards(drag.original, p) };
    return withHandleAt(drag.original, drag.handle, p);
  }

  up(event) {
    const drag = this.drag;
    this.drag = null;
    if (drag && drag.mode !== "pan" && drag.moved) {
      this.viewer.endLive();
      this.workspace.reshape(drag.id, drag.shape);
      return;
    }
    if (this.drawing && event.button === 0) this.drawUp(this.point(event), event);
  }

  wheel(event) {
    event.preventDefault();
    this.viewer.zoomAt(event.clientX, event.clientY, event.deltaY < 0 ? 1.15 : 1 / 1.15);
  }

  // Drawing

  drawDown(p, event) {
    const tool = this.tool;
    if (tool === "rectangle" || tool === "ellipse") {
      if (!this.drawing) {
        this.drawing = { tool, points: [p], pointer: p, startClient: [event.clientX, event.clientY] };
      } else {
        this.finish([...this.drawing.points, p]);
      }
    } else {
      if (!this.drawing) this.drawing = { tool, points: [], pointer: p };
      const first = this.drawing.points[0];
      const closes =
        tool === "polygon" &&
        this.drawing.points.length >= 3 &&
        Math.hypot(first[0] - p[0], first[1] - p[1]) <= 6 * this.viewer.pixel;
      if (closes) {
        this.finish(this.drawing.points);
        return;
      }
      this.drawing.points.push(p);
      this.viewer.sketch = this.sketchOf(this.drawing);
      this.viewer.requestDraw();
    }
  }

  drawUp(p, event) {
    const drawing = this.drawing;
    if (drawing.tool !== "rectangle" && drawing.tool !== "ellipse") return;
    if (drawing.points.length !== 1 || !drawing.startClient) return;
    const far = Math.hypot(event.clientX - drawing.startClient[0], event.clientY - drawing.startClient[1]);
    if (far >= CLICK_SLOP_PX) this.finish([drawing.points[0], p]);
    else drawing.startClient = null; // a click: the next click sets the other corner
  }

  doubleClick() {
    if (this.drawing && MIN_POINTS[this.drawing.tool]) {
      // The double click's two clicks each added a vertex at the same place.
      const points = this.drawing.points;
      if (points.length >= 2) {
        const [a, b] = points.slice(-2);
        if (Math.hypot(a[0] - b[0], a[1] - b[1]) <= 2 * this.viewer.pixel) points.pop();
      }
      this.finishPath();
    }
  }

  // Enter or N: ends a polygon, polyline or points.
  finishPath() {
    if (!this.drawing || !MIN_POINTS[this.drawing.tool]) return false;
    if (this.drawing.points.length < MIN_POINTS[this.drawing.tool]) return false;
    this.finish(this.drawing.points);
    return true;
  }

  finish(points) {
    const shape = this.shapeOf(this.drawing.tool, points);
    this.cancelDrawing();
    if (shape) this.workspace.createShape(shape);
  }

  cancelDrawing() {
    this.drawing = null;
    if (this.viewer.sketch) {
      this.viewer.sketch = null;
      this.viewer.requestDraw();
    }
  }

  sketchOf(drawing) {
    const points = [...drawing.points, drawing.pointer];
    if (drawing.tool === "rectangle" || drawing.tool === "ellipse") {
      return this.shapeOf(drawing.tool, points.slice(0, 1).concat([drawing.pointer])) || {
        type: "points",
        points: points.flat(),
      };
    }
    return { type: drawing.tool === "polygon" ? "polygon" : "polyline", points: points.flat(), rotation: 0 };
  }

  shapeOf(tool, points) {
    if (tool === "rectangle") {
      const [[x1, y1], [x2, y2]] = points;
      if (Math.abs(x2 - x1) < 1 || Math.abs(y2 - y1) < 1) return null;
      return { type: tool, points: [Math.min(x1, x2), Math.min(y1, y2), Math.max(x1, x2), Math.max(y1, y2)], rotation: 0 };
    }
    if (tool === "ellipse") {
      const [[cx, cy], [x2, y2]] = points;
      if (Math.abs(x2 - cx) < 1 || Math.abs(y2 - cy) < 1) return null;
      return { type: tool, points: [cx, cy, cx + Math.abs(x2 - cx), cy - Math.abs(y2 - cy)], rotation: 0 };
    }
    if (points.length < MIN_POINTS[tool]) return null;
    return { type: tool, points: points.flat(), rotation: 0 };
  }
}
