// A track's shape on a frame, as core/interpolation.py derives it (simplified for polygons:
// linear when both keyframes have as many vertices, else the previous keyframe repeats).

const LINEAR = new Set(["rectangle", "ellipse", "cuboid", "skeleton"]);

export function trackShapeAt(track, frame) {
  const keys = track.shapes;
  if (!keys.length || frame < keys[0].frame) return null;
  let index = 0;
  while (index + 1 < keys.length && keys[index + 1].frame <= frame) index += 1;
  const previous = keys[index];
  if (previous.frame === frame) return { ...previous, keyframe: true };
  if (previous.outside) return null;
  const next = keys[index + 1];
  if (!next || next.type !== previous.type) return { ...previous, frame, keyframe: false };
  const share = (frame - previous.frame) / (next.frame - previous.frame);
  return {
    ...previous,
    frame,
    keyframe: false,
    points: interpolatePoints(previous, next, share),
    rotation: LINEAR.has(previous.type)
      ? interpolateAngle(previous.rotation, next.rotation, share)
      : previous.rotation,
  };
}

function interpolatePoints(previous, next, share) {
  const a = previous.points;
  const b = next.points;
  const linear =
    (LINEAR.has(previous.type) || previous.type === "polygon" || previous.type === "polyline" ||
      (previous.type === "points" && a.length === 2)) &&
    a.length === b.length;
  if (!linear) return a.slice();
  return a.map((value, i) => value + (b[i] - value) * share);
}

function interpolateAngle(from, to, share) {
  let difference = ((to - from) % 360 + 360) % 360;
  if (difference > 180) difference -= 360;
  return (((from + difference * share) % 360) + 360) % 360;
}

// The track's keyframes with `shape` stored as the keyframe at its frame.
export function withKeyframe(track, shape) {
  const keyframe = {
    type: shape.type,
    frame: shape.frame,
    points: shape.points,
    occluded: shape.occluded,
    outside: shape.outside,
    z_order: shape.z_order,
    rotation: shape.rotation,
    attributes: shape.attributes ?? [],
  };
  const others = track.shapes.filter((key) => key.frame !== shape.frame);
  return [...others, keyframe].sort((x, y) => x.frame - y.frame);
}

export function withoutKeyframe(track, frame) {
  return track.shapes.filter((key) => key.frame !== frame);
}
