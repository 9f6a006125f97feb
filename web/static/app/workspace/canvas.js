// The frame viewer: the frame image, its objects, handles, the shape being drawn and the
// other people's cursors, on one canvas, with zoom and pan. Objects of one label are drawn as
// one path, so a frame of thousands of polygons is a few fill calls, not thousands.

import { handles, maskCanvas, outline, rotatable, rotationHandle } from "./geometry.js";

const HANDLE_RADIUS = 5;
const ROTATION_REACH_PX = 30;

export class Viewer {
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
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
    this.live = null; // the object being dragged: drawn over a cached picture of the rest
    this.still = null;
    this.masks = new WeakMap();
    this.readOnly = false;
    this.drawRequested = false;
    this.onDrawn = null;
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
    this.resize();
  }

  resize() {
    const box = this.canvas.parentElement.getBoundingClientRect();
    this.canvas.width = Math.max(1, Math.floor(box.width));
    this.canvas.height = Math.max(1, Math.floor(box.height));
    // CSS size equal to the bitmap, so that a client pixel is a canvas pixel.
    this.canvas.style.width = `${this.canvas.width}px`;
    this.canvas.style.height = `${this.canvas.height}px`;
    this.still = null;
    this.requestDraw();
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

  setObjects(objects) {
    this.objects = objects;
    this.invalidate();
  }

  invalidate() {
    this.still = null;
    this.requestDraw();
  }

  // Starts dragging one object: the rest is drawn once and reused until `endLive`.
  beginLive(id, shape) {
    this.live = { id, shape };
    this.still = null;
    this.requestDraw();
  }

  moveLive(shape) {
    this.live.shape = shape;
    this.requestDraw();
  }

  endLive() {
    this.live = null;
    this.invalidate();
  }

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
    const context = this.context;
    if (this.live) {
      if (!this.still) this.still = this.renderStill(this.live.id);
      context.setTransform(1, 0, 0, 1, 0, 0);
      context.clearRect(0, 0, this.canvas.width, this.canvas.height);
      context.drawImage(this.still, 0, 0);
      this.withTransform(() => {
        const label = this.objects.find((o) => o.id === this.live.id);
        this.drawGroup([{ ...label, shape: this.live.shape }], this.colorOf(label));
        this.drawSelection(this.live.shape);
      });
    } else {
      this.paintScene(context, null);
      this.withTransform(() => {
        const selected = this.objects.find((o) => o.id === this.selected);
        if (selected) this.drawSelection(selected.shape);
      });
    }
    this.withTransform(() => {
      if (this.sketch) this.drawSketch(this.sketch);
    });
    this.drawCursors();
  }

  renderStill(skipId) {
    const still = new OffscreenCanvas(this.canvas.width, this.canvas.height);
    this.paintScene(still.getContext("2d"), skipId);
    return still;
  }

  // The image and every object but `skipId`, grouped by color.
  paintScene(context, skipId) {
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.fillStyle = "#1d1f21";
    context.fillRect(0, 0, this.canvas.width, this.canvas.height);
    context.setTransform(this.scale, 0, 0, this.scale, this.offset[0], this.offset[1]);
    if (this.image) {
      context.imageSmoothingEnabled = this.scale < 4;
      context.drawImage(this.image, 0, 0, this.imageSize[0], this.imageSize[1]);
    }
    const groups = new Map();
    for (const object of this.objects) {
      if (object.id === skipId) continue;
      const color = this.colorOf(object);
      if (!groups.has(color)) groups.set(color, []);
      groups.get(color).push(object);
    }
    const saved = this.context;
    this.context = context;
    for (const [color, objects] of groups) this.drawGroup(objects, color);
    for (const object of this.objects) {
      const highlight = this.highlights.get(object.id);
      if (highlight && object.id !== skipId) this.strokeOne(object.shape, highlight, 3);
      if (object.id === this.hovered && object.id !== skipId) this.strokeOne(object.shape, "#ffffff", 2);
    }
    this.context = saved;
  }

  withTransform(paint) {
    const context = this.context;
    context.save();
    context.setTransform(this.scale, 0, 0, this.scale, this.offset[0], this.offset[1]);
    paint();
    context.restore();
  }

  colorOf(object) {
    return this.colors.get(object.object.label_id) || "#ff6600";
  }

  drawGroup(objects, color) {
    const context = this.context;
    const areas = new Path2D();
    const lines = new Path2D();
    const dots = new Path2D();
    const radius = 3 * this.pixel;
    for (const { shape } of objects) {
      if (shape.type === "mask") {
        this.drawMask(shape, color);
        addPolygon(areas, outline(shape), true);
      } else if (shape.type === "polyline") {
        addPolygon(lines, outline(shape), false);
      } else if (shape.type === "points" || shape.type === "skeleton") {
        for (const [x, y] of outline(shape)) {
          dots.moveTo(x + radius, y);
          dots.arc(x, y, radius, 0, 2 * Math.PI);
        }
        if (shape.type === "skeleton") addSkeleton(lines, shape);
      } else {
        addPolygon(areas, outline(shape), true);
        if (shape.type === "cuboid") addCuboidEdges(lines, shape.points);
      }
    }
    context.lineWidth = 2 * this.pixel;
    context.strokeStyle = color;
    context.fillStyle = color;
    context.globalAlpha = 0.25;
    context.fill(areas, "evenodd");
    context.globalAlpha = 1;
    context.stroke(areas);
    context.stroke(lines);
    context.fill(dots);
  }

  drawMask(shape, color) {
    let cached = this.masks.get(shape);
    if (!cached) {
      cached = maskCanvas(shape.points, color);
      this.masks.set(shape, cached);
    }
    const n = shape.points.length;
    this.context.drawImage(cached, shape.points[n - 4], shape.points[n - 3]);
  }

  strokeOne(shape, color, width) {
    const path = new Path2D();
    addPolygon(path, outline(shape), shape.type !== "polyline" && shape.type !== "points");
    this.context.lineWidth = width * this.pixel;
    this.context.strokeStyle = color;
    this.context.stroke(path);
  }

  drawSelection(shape) {
    const context = this.context;
    this.strokeOne(shape, "#ffffff", 2);
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

  drawSketch(sketch) {
    const context = this.context;
    context.setLineDash([6 * this.pixel, 4 * this.pixel]);
    this.strokeOne(sketch, "#ffffff", 2);
    context.setLineDash([]);
    context.fillStyle = "#ffffff";
    for (const [x, y] of outline(sketch)) {
      context.beginPath();
      context.arc(x, y, 3 * this.pixel, 0, 2 * Math.PI);
      context.fill();
    }
  }

  drawCursors() {
    const context = this.context;
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

function addPolygon(path, vertices, closed) {
  if (!vertices.length) return;
  path.moveTo(vertices[0][0], vertices[0][1]);
  for (let i = 1; i < vertices.length; i += 1) path.lineTo(vertices[i][0], vertices[i][1]);
  if (closed) path.closePath();
}

function addSkeleton(path, shape) {
  const points = shape.elements.map((element) => [element.points[0], element.points[1]]);
  for (let i = 1; i < points.length; i += 1) {
    path.moveTo(points[i - 1][0], points[i - 1][1]);
    path.lineTo(points[i][0], points[i][1]);
  }
}

function addCuboidEdges(path, points) {
  for (let i = 0; i + 3 < points.length; i += 4) {
    path.moveTo(points[i], points[i + 1]);
    path.lineTo(points[i + 2], points[i + 3]);
  }
}
