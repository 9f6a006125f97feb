// Shape geometry in image coordinates: outlines, hit tests, handles and edits per shape type.
// Points follow CVAT: rectangle [x1, y1, x2, y2] (+ rotation in degrees about its centre),
// ellipse [cx, cy, cx + rx, cy - ry], polygon/polyline/points [x, y, ...], cuboid 8 corners,
// mask [rle..., left, top, right, bottom], skeleton: its `elements` hold the points.

const RAD = Math.PI / 180;

export function rotate([x, y], [cx, cy], degrees) {
  const angle = degrees * RAD;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  return [cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos];
}

export function pairs(points) {
  const out = [];
  for (let i = 0; i + 1 < points.length; i += 2) out.push([points[i], points[i + 1]]);
  return out;
}

export function rectangleCorners(shape) {
  const [x1, y1, x2, y2] = shape.points;
  const centre = [(x1 + x2) / 2, (y1 + y2) / 2];
  return [
    [x1, y1],
    [x2, y1],
    [x2, y2],
    [x1, y2],
  ].map((corner) => rotate(corner, centre, shape.rotation || 0));
}

export function maskBox(points) {
  const n = points.length;
  return [points[n - 4], points[n - 3], points[n - 2], points[n - 1]];
}

// The shape's vertices, for drawing outlines, hit tests and bounding boxes.
export function outline(shape) {
  switch (shape.type) {
    case "rectangle":
      return rectangleCorners(shape);
    case "ellipse": {
      const [cx, cy, x2, y2] = shape.points;
      const rx = Math.abs(x2 - cx);
      const ry = Math.abs(cy - y2);
      const out = [];
      for (let i = 0; i < 32; i += 1) {
        const t = (i / 32) * 2 * Math.PI;
        out.push(rotate([cx + rx * Math.cos(t), cy + ry * Math.sin(t)], [cx, cy], shape.rotation || 0));
      }
      return out;
    }
    case "mask": {
      const [left, top, right, bottom] = maskBox(shape.points);
      return [
        [left, top],
        [right + 1, top],
        [right + 1, bottom + 1],
        [left, bottom + 1],
      ];
    }
    case "skeleton":
      return (shape.elements || []).flatMap((element) => pairs(element.points));
    case "cuboid":
      return convexHull(pairs(shape.points));
    default:
      return pairs(shape.points);
  }
}

export function bounds(shape) {
  const vertices = outline(shape);
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of vertices) {
    minX = Math.min(minX, x);
    minY = Math.min(minY, y);
    maxX = Math.max(maxX, x);
    maxY = Math.max(maxY, y);
  }
  return [minX, minY, maxX, maxY];
}

function insidePolygon([x, y], vertices) {
  let inside = false;
  for (let i = 0, j = vertices.length - 1; i < vertices.length; j = i, i += 1) {
    const [xi, yi] = vertices[i];
    const [xj, yj] = vertices[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function segmentDistance([px, py], [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const length = dx * dx + dy * dy;
  const t = length ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / length)) : 0;
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

// Whether image point `p` hits the shape; `tolerance` is in image pixels.
export function hits(shape, p, tolerance) {
  const vertices = outline(shape);
  switch (shape.type) {
    case "polyline":
      return vertices.some((v, i) => i > 0 && segmentDistance(p, vertices[i - 1], v) <= tolerance);
    case "points":
    case "skeleton":
      if (vertices.some(([x, y]) => Math.hypot(p[0] - x, p[1] - y) <= tolerance * 1.5)) return true;
      if (shape.type === "points") return false;
      return insideBox(p, bounds(shape));
    default:
      return insidePolygon(p, vertices) || nearEdge(p, vertices, tolerance);
  }
}

function nearEdge(p, vertices, tolerance) {
  return vertices.some((v, i) => segmentDistance(p, vertices[(i || vertices.length) - 1], v) <= tolerance);
}

function insideBox([x, y], [minX, minY, maxX, maxY]) {
  return x >= minX && x <= maxX && y >= minY && y <= maxY;
}

// Handles a selected shape offers: vertices to drag, and a rotation handle where it rotates.
export function handles(shape) {
  switch (shape.type) {
    case "rectangle":
      return rectangleCorners(shape);
    case "ellipse": {
      const [cx, cy, x2, y2] = shape.points;
      return [rotate([x2, y2], [cx, cy], shape.rotation || 0)];
    }
    case "polygon":
    case "polyline":
    case "points":
      return pairs(shape.points);
    default:
      return [];
  }
}

export function rotatable(shape) {
  return shape.type === "rectangle" || shape.type === "ellipse";
}

export function centre(shape) {
  if (shape.type === "ellipse") return [shape.points[0], shape.points[1]];
  const [minX, minY, maxX, maxY] = shape.type === "rectangle"
    ? [shape.points[0], shape.points[1], shape.points[2], shape.points[3]]
    : bounds(shape);
  return [(minX + maxX) / 2, (minY + maxY) / 2];
}

// Where the rotation handle sits: `reach` image pixels above the top edge's middle.
export function rotationHandle(shape, reach) {
  const [cx, cy] = centre(shape);
  const top = shape.type === "ellipse"
    ? cy - Math.abs(cy - shape.points[3])
    : Math.min(shape.points[1], shape.points[3]);
  return rotate([cx, top - reach], [cx, cy], shape.rotation || 0);
}

export function translated(shape, dx, dy) {
  if (shape.type === "mask") {
    // A mask's box is in whole pixels: it moves by whole pixels.
    [dx, dy] = [Math.round(dx), Math.round(dy)];
    const points = shape.points.slice();
    const n = points.length;
    points[n - 4] += dx;
    points[n - 3] += dy;
    points[n - 2] += dx;
    points[n - 1] += dy;
    return { ...shape, points };
  }
  const moved = { ...shape, points: shape.points.map((v, i) => v + (i % 2 ? dy : dx)) };
  if (shape.elements?.length) moved.elements = shape.elements.map((e) => translated(e, dx, dy));
  return moved;
}

// The shape with handle `index` dragged to image point `to`.
export function withHandleAt(shape, index, [x, y]) {
  if (shape.type === "rectangle") {
    const corners = rectangleCorners(shape);
    const opposite = corners[(index + 2) % 4];
    const mid = [(opposite[0] + x) / 2, (opposite[1] + y) / 2];
    const [lx, ly] = rotate([x, y], mid, -(shape.rotation || 0));
    const halfW = Math.abs(lx - mid[0]);
    const halfH = Math.abs(ly - mid[1]);
    return { ...shape, points: [mid[0] - halfW, mid[1] - halfH, mid[0] + halfW, mid[1] + halfH] };
  }
  if (shape.type === "ellipse") {
    const [cx, cy] = shape.points;
    const [lx, ly] = rotate([x, y], [cx, cy], -(shape.rotation || 0));
    return { ...shape, points: [cx, cy, cx + Math.abs(lx - cx), cy - Math.abs(cy - ly)] };
  }
  const points = shape.points.slice();
  points[index * 2] = x;
  points[index * 2 + 1] = y;
  return { ...shape, points };
}

// The rotation (degrees, [0, 360)) that points the shape's top at image point `to`.
export function rotationTowards(shape, [x, y]) {
  const [cx, cy] = centre(shape);
  const degrees = Math.atan2(y - cy, x - cx) / RAD + 90;
  return ((degrees % 360) + 360) % 360;
}

export function rounded(shape) {
  const round = (v) => Math.round(v * 100) / 100;
  const out = { ...shape, points: shape.type === "mask" ? shape.points : shape.points.map(round) };
  if (shape.rotation !== undefined) out.rotation = round(shape.rotation);
  if (shape.elements?.length) out.elements = shape.elements.map(rounded);
  return out;
}

function convexHull(points) {
  const sorted = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (sorted.length < 3) return sorted;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [];
  for (const p of sorted) {
    while (lower.length >= 2 && cross(lower.at(-2), lower.at(-1), p) <= 0) lower.pop();
    lower.push(p);
  }
  const upper = [];
  for (const p of sorted.reverse()) {
    while (upper.length >= 2 && cross(upper.at(-2), upper.at(-1), p) <= 0) upper.pop();
    upper.push(p);
  }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

// A CVAT mask's run-length counts decoded into an RGBA canvas of its box.
export function maskCanvas(points, color) {
  const [left, top, right, bottom] = maskBox(points);
  const width = Math.round(right - left + 1);
  const height = Math.round(bottom - top + 1);
  const canvas = new OffscreenCanvas(Math.max(1, width), Math.max(1, height));
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  const [r, g, b] = hexColor(color);
  let offset = 0;
  let on = false;
  for (let i = 0; i < points.length - 4; i += 1) {
    const run = points[i];
    if (on) {
      for (let p = offset; p < offset + run && p < width * height; p += 1) {
        image.data.set([r, g, b, 140], p * 4);
      }
    }
    offset += run;
    on = !on;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

export function hexColor(color) {
  const hex = (color || "#ff0000").replace("#", "");
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16) || 0);
}
