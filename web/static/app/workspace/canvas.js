// The frame viewer, on two canvases with zoom and pan. The base holds the frame image and its
// objects; it is redrawn only when they or the view change. The overlay above it holds what
// moves often: the selection and its handles, the object being dragged, the shape being drawn,
// hover and the other people's cursors and selections. When a few objects change (an edit,
// someone else's edit, a drag starting), only the screen boxes they covered and cover now are
// repainted on the base. Objects of one color are drawn as one
// path built from per-shape paths kept between redraws, outlined with hairlines (Skia's fast
// path), so a frame of thousands of polygons is a few fill calls.

import { bounds, handles, maskCanvas, outline, rotatable, rotationHandle } from "./geometry.js";

const HANDLE_RADIUS = 5;
const ROTATION_REACH_PX = 30;
const MAX_DAMAGED = 200; // more changed objects than this and the base is redrawn whole
const DAMAGE_PAD_PX = 4;

export class Viewer {
  constructor(canvas, base) {
    this.canvas = canvas; // the overlay: it takes the mouse
    this.context = canvas.getContext("2d");
    this.base = base;
    this.baseContext = base.getContext("2d", { alpha: false });
    this.scale = 1;
    this.offset = [0, 0];
    this.image = null;
    this.imageSize = [1, 1];
    this.objects = [];
    this.colors = new Map(); // label id -> color
    this.selected = null;
    this.hovered = null;
    this.highlights = new Map(); // object id -> color (others' selections)
    this.cursors = []; // [{x, y, color, name}]
    this.sketch = null; // the shape being drawn: {type, points, rotation}
    this.live = null; // the object being dragged: on the overlay, left out of the base
    this.baseDirty = true;
    this.shown = new Map(); // id -> {shape, color}: what the base shows now
    this.paths = new WeakMap(); // shape -> its outline as Path2D pieces
    this.masks = new WeakMap();
    this.readOnly = false;
    this.drawRequested = false;
    this.onDrawn = null;
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
    this.resize();
  }

  resize() {
    const box = this.canvas.parentElement.getBoundingClientRect();
    const width = Math.max(1, Math.floor(box.width));
    const height = Math.max(1, Math.floor(box.height));
    for (const canvas of [this.canvas, this.base]) {
      canvas.width = width;
      canvas.height = height;
      // CSS size equal to the bitmap, so that a client pixel is a canvas pixel.
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    this.invalidate();
  }

  setImage(image, width, height) {
    const sizeChanged = width !== this.imageSize[0] || height !== this.imageSize[1];
    this.image = image;
    this.imageSize = [width, height];
    if (sizeChanged || !this.fitted) this.fit();
    this.invalidate();
  }

  fit() {
    const [width, height] = this.imageSize;
    const margin = 20;
    this.scale = Math.min(
      (this.canvas.width - margin * 2) / width,
      (this.canvas.height - margin * 2) / height,
    );
    if (!Number.isFinite(this.scale) || this.scale <= 0) this.scale = 1;
    this.offset = [
      (this.canvas.width - width * this.scale) / 2,
      (this.canvas.height - height * this.scale) / 2,
    ];
    this.fitted = true;
    this.invalidate();
  }

  zoomAt(clientX, clientY, factor) {
    const [x, y] = this.toImage(clientX, clientY);
    this.scale = Math.min(64, Math.max(0.02, this.scale * factor));
    const [sx, sy] = this.local(clientX, clientY);
    this.offset = [sx - x * this.scale, sy - y * this.scale];
    this.invalidate();
  }

  panBy(dx, dy) {
    this.offset = [this.offset[0] + dx, this.offset[1] + dy];
    this.invalidate();
  }

  local(clientX, clientY) {
    const box = this.canvas.getBoundingClientRect();
    return [clientX - box.left, clientY - box.top];
  }

  toImage(clientX, clientY) {
    const [sx, sy] = this.local(clientX, clientY);
    return [(sx - this.offset[0]) / this.scale, (sy - this.offset[1]) / this.scale];
  }

  toClient(x, y) {
    const box = this.canvas.getBoundingClientRect();
    return [box.left + this.offset[0] + x * this.scale, box.top + this.offset[1] + y * this.scale];
  }

  // Image pixels per screen pixel, for tolerances that feel the same at any zoom.
  get pixel() {
    return 1 / this.scale;
  }

  rotationReach() {
    return ROTATION_REACH_PX / this.scale;
  }

  // The objects on the frame; the base repaints what differs from what it shows.
  setObjects(objects) {
    this.objects = objects;
    this.requestDraw();
  }

  // The base must be redrawn whole (the image or the view changed).
  invalidate() {
    this.baseDirty = true;
    this.requestDraw();
  }

  // Starts dragging one object: it leaves the base and follows the mouse on the overlay.
  beginLive(id, shape) {
    this.live = { id, shape };
    this.requestDraw();
  }

  moveLive(shape) {
    this.live.shape = shape;
    this.requestDraw();
  }

  endLive() {
    this.live = null;
    this.requestDraw();
  }

  // The overlay must be redrawn.
  requestDraw() {
    if (this.drawRequested) return;
    this.drawRequested = true;
    requestAnimationFrame(() => {
      this.drawRequested = false;
      this.draw();
      this.onDrawn?.();
    });
  }

  draw() {
    const wanted = this.baseContent();
    const damage = this.baseDirty ? null : this.damage(wanted);
    if (damage === null) this.paintBase(wanted, null);
    else if (damage.length) this.paintBase(wanted, damage);
    this.baseDirty = false;
    this.shown = wanted;
    this.paintOverlay();
  }

  // What the base should show: every object but the one being dragged.
  baseContent() {
    const wanted = new Map();
    const skip = this.live?.id;
    for (const object of this.objects) {
      if (object.id !== skip) wanted.set(object.id, { shape: object.shape, color: this.colorOf(object) });
    }
    return wanted;
  }

  // Image-space boxes of what changed since the base was painted; null: too much, paint all.
  damage(wanted) {
    const boxes = [];
    for (const [id, now] of wanted) {
      const before = this.shown.get(id);
      if (before && before.shape === now.shape && before.color === now.color) continue;
      if (before) boxes.push(this.boundsOf(before.shape));
      boxes.push(this.boundsOf(now.shape));
      if (boxes.length > MAX_DAMAGED) return null;
    }
    for (const [id, before] of this.shown) {
      if (!wanted.has(id)) boxes.push(this.boundsOf(before.shape));
      if (boxes.length > MAX_DAMAGED) return null;
    }
    const pad = DAMAGE_PAD_PX * this.pixel;
    return boxes.map(([x1, y1, x2, y2]) => [x1 - pad, y1 - pad, x2 + pad, y2 + pad]);
  }

  // The image and the objects, grouped by color; only inside `boxes` (image space) if given.
  paintBase(wanted, boxes) {
    const context = this.baseContext;
    context.save();
    context.setTransform(this.scale, 0, 0, this.scale, this.offset[0], this.offset[1]);
    if (boxes) {
      const clip = new Path2D();
      for (const [x1, y1, x2, y2] of boxes) clip.rect(x1, y1, x2 - x1, y2 - y1);
      context.clip(clip);
    }
    context.fillStyle = "#1d1f21";
    context.fillRect(-this.offset[0] / this.scale, -this.offset[1] / this.scale, this.base.width / this.scale, this.base.height / this.scale);
    if (this.image) {
      context.imageSmoothingEnabled = this.scale < 4;
      context.drawImage(this.image, 0, 0, this.imageSize[0], this.imageSize[1]);
    }
    const groups = new Map();
    for (const { shape, color } of wanted.values()) {
      if (boxes && !boxes.some((box) => overlaps(box, this.boundsOf(shape)))) continue;
      if (!groups.has(color)) groups.set(color, []);
      groups.get(color).push(shape);
    }
    for (const [color, shapes] of groups) this.drawShapes(context, shapes, color, 1);
    context.restore();
  }

  boundsOf(shape) {
    const paths = this.pathsOf(shape);
    paths.bounds ??= bounds(shape);
    return paths.bounds;
  }

  paintOverlay() {
    const context = this.context;
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    context.setTransform(this.scale, 0, 0, this.scale, this.offset[0], this.offset[1]);
    for (const object of this.objects) {
      const highlight = this.highlights.get(object.id);
      if (highlight) this.strokeOne(context, object.shape, highlight, 3);
      if (object.id === this.hovered) this.strokeOne(context, object.shape, "#ffffff", 2);
    }
    if (this.live) {
      const object = this.objects.find((o) => o.id === this.live.id);
      if (object) this.drawShapes(context, [this.live.shape], this.colorOf(object), 2);
      this.drawSelection(context, this.live.shape);
    } else {
      const selected = this.objects.find((o) => o.id === this.selected);
      if (selected) this.drawSelection(context, selected.shape);
    }
    if (this.sketch) this.drawSketch(context, this.sketch);
    this.drawCursors(context);
  }

  colorOf(object) {
    return this.colors.get(object.object.label_id) || "#ff6600";
  }

  // The shape's outline as Path2D pieces: `area` (filled and outlined), `line` (outlined only)
  // and `dots` (points, drawn as small discs), built once per shape object.
  pathsOf(shape) {
    let found = this.paths.get(shape);
    if (found) return found;
    found = { area: null, line: null, dots: null };
    if (shape.type === "polyline") {
      found.line = polygonPath(outline(shape), false);
    } else if (shape.type === "points") {
      found.dots = outline(shape);
    } else if (shape.type === "skeleton") {
      found.dots = outline(shape);
      found.line = skeletonPath(shape);
    } else {
      found.area = polygonPath(outline(shape), true);
      if (shape.type === "cuboid") found.line = cuboidPath(shape.points);
    }
    this.paths.set(shape, found);
    return found;
  }

  drawShapes(context, shapes, color, width) {
    const areas = new Path2D();
    const lines = new Path2D();
    const dots = new Path2D();
    const radius = 3 * this.pixel;
    for (const shape of shapes) {
      if (shape.type === "mask") this.drawMask(context, shape, color);
      const { area, line, dots: points } = this.pathsOf(shape);
      if (area) areas.addPath(area);
      if (line) lines.addPath(line);
      for (const [x, y] of points || []) {
        dots.moveTo(x + radius, y);
        dots.arc(x, y, radius, 0, 2 * Math.PI);
      }
    }
    context.lineWidth = width * this.pixel;
    context.strokeStyle = color;
    context.fillStyle = color;
    context.globalAlpha = 0.25;
    context.fill(areas);
    context.globalAlpha = 1;
    context.stroke(areas);
    context.stroke(lines);
    context.fill(dots);
  }

  drawMask(context, shape, color) {
    let cached = this.masks.get(shape);
    if (!cached) {
      cached = maskCanvas(shape.points, color);
      this.masks.set(shape, cached);
    }
    const n = shape.points.length;
    context.drawImage(cached, shape.points[n - 4], shape.points[n - 3]);
  }

  strokeOne(context, shape, color, width) {
    const closed = shape.type !== "polyline" && shape.type !== "points";
    context.lineWidth = width * this.pixel;
    context.strokeStyle = color;
    context.stroke(polygonPath(outline(shape), closed));
  }

  drawSelection(context, shape) {
    this.strokeOne(context, shape, "#ffffff", 2);
    const radius = HANDLE_RADIUS * this.pixel;
    context.fillStyle = "#ffffff";
    context.strokeStyle = "#000000";
    context.lineWidth = this.pixel;
    for (const [x, y] of handles(shape)) {
      context.beginPath();
      context.arc(x, y, radius, 0, 2 * Math.PI);
      context.fill();
      context.stroke();
    }
    if (rotatable(shape) && !this.readOnly) {
      const [x, y] = rotationHandle(shape, this.rotationReach());
      context.beginPath();
      context.fillStyle = "#ffd400";
      context.arc(x, y, radius, 0, 2 * Math.PI);
      context.fill();
      context.stroke();
    }
  }

  drawSketch(context, sketch) {
    context.setLineDash([6 * this.pixel, 4 * this.pixel]);
    this.strokeOne(context, sketch, "#ffffff", 2);
    context.setLineDash([]);
    context.fillStyle = "#ffffff";
    for (const [x, y] of outline(sketch)) {
      context.beginPath();
      context.arc(x, y, 3 * this.pixel, 0, 2 * Math.PI);
      context.fill();
    }
  }

  drawCursors(context) {
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.font = "12px sans-serif";
    for (const cursor of this.cursors) {
      const x = this.offset[0] + cursor.x * this.scale;
      const y = this.offset[1] + cursor.y * this.scale;
      context.fillStyle = cursor.color;
      context.beginPath();
      context.moveTo(x, y);
      context.lineTo(x + 12, y + 4);
      context.lineTo(x + 4, y + 12);
      context.closePath();
      context.fill();
      const width = context.measureText(cursor.name).width + 8;
      context.fillRect(x + 10, y + 12, width, 16);
      context.fillStyle = "#ffffff";
      context.fillText(cursor.name, x + 14, y + 24);
    }
  }

  // The handle of the selected shape under a client point: an index, "rotate", or null.
  handleAt(shape, clientX, clientY) {
    const [x, y] = this.toImage(clientX, clientY);
    const reach = (HANDLE_RADIUS + 3) * this.pixel;
    if (rotatable(shape)) {
      const [rx, ry] = rotationHandle(shape, this.rotationReach());
      if (Math.hypot(rx - x, ry - y) <= reach) return "rotate";
    }
    const found = handles(shape).findIndex(([hx, hy]) => Math.hypot(hx - x, hy - y) <= reach);
    return found >= 0 ? found : null;
  }
}

function overlaps([ax1, ay1, ax2, ay2], [bx1, by1, bx2, by2]) {
  return ax1 <= bx2 && bx1 <= ax2 && ay1 <= by2 && by1 <= ay2;
}

function polygonPath(vertices, closed) {
  const path = new Path2D();
  if (!vertices.length) return path;
  path.moveTo(vertices[0][0], vertices[0][1]);
  for (let i = 1; i < vertices.length; i += 1) path.lineTo(vertices[i][0], vertices[i][1]);
  if (closed) path.closePath();
  return path;
}

function skeletonPath(shape) {
  const path = new Path2D();
  const points = shape.elements.map((element) => [element.points[0], element.points[1]]);
  for (let i = 1; i < points.length; i += 1) {
    path.moveTo(points[i - 1][0], points[i - 1][1]);
    path.lineTo(points[i][0], points[i][1]);
  }
  return path;
}

function cuboidPath(points) {
  const path = new Path2D();
  for (let i = 0; i + 3 < points.length; i += 4) {
    path.moveTo(points[i], points[i + 1]);
    path.lineTo(points[i + 2], points[i + 3]);
  }
  return path;
}
