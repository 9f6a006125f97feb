// The job's annotations as this page knows them: what the server has committed (from the
// room's snapshot and events) with this user's unacknowledged edits laid over it.

import { trackShapeAt } from "./interpolate.js";

const KINDS = ["tags", "shapes", "tracks"];
const KIND_OF = { tags: "tag", shapes: "shape", tracks: "track" };

export class AnnotationStore {
  constructor() {
    this.committed = new Map(); // id -> {kind, object}
    this.revisions = new Map(); // id -> job version of its last change
    this.removedAt = new Map(); // id -> job version that removed it
    this.floor = -1; // the version of the last snapshot: it holds the truth up to there
    this.version = 0;
    this.overlay = new Map(); // id -> {kind, object} | null (deleted), from pending edits
    this.listeners = new Set();
  }

  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed(detail) {
    for (const listener of this.listeners) listener(detail);
  }

  loadSnapshot(snapshot) {
    this.committed.clear();
    this.revisions.clear();
    this.removedAt.clear();
    this.putAll(snapshot, snapshot.version);
    for (const [id, version] of Object.entries(snapshot.revisions)) {
      this.revisions.set(Number(id), version);
    }
    this.version = snapshot.version;
    this.floor = snapshot.version;
    this.changed({ reset: true });
  }

  loadData(data, version) {
    this.committed.clear();
    this.revisions.clear();
    this.removedAt.clear();
    this.putAll(data, version);
    this.version = version;
    this.floor = version;
    this.changed({ reset: true });
  }

  // One committed `event` frame from the room; returns the ids it touched.
  applyEvent(event) {
    const touched = [];
    const data = event.data;
    switch (event.name) {
      case "AnnotationsCreated":
      case "AnnotationsUpdated":
        touched.push(...this.putAll(data, event.version));
        break;
      case "AnnotationsDeleted":
        touched.push(...this.removeAll(data, event.version));
        break;
      case "EditUndone":
      case "EditRedone":
        touched.push(...this.removeAll(data.remove, event.version));
        touched.push(...this.putAll(data.restore, event.version));
        break;
      default:
        break;
    }
    this.version = Math.max(this.version, event.version);
    if (touched.length) this.changed({ ids: touched, event });
    return touched;
  }

  putAll(data, version, { unlessNewer = false } = {}) {
    const ids = [];
    for (const kind of KINDS) {
      for (const object of data[kind] || []) {
        if (unlessNewer && this.lastChange(object.id) >= version) continue;
        this.committed.set(object.id, { kind: KIND_OF[kind], object });
        this.revisions.set(object.id, version);
        ids.push(object.id);
      }
    }
    return ids;
  }

  removeAll(ids, version) {
    const removed = [];
    for (const kind of KINDS) {
      for (const id of ids[kind] || []) {
        this.committed.delete(id);
        this.revisions.delete(id);
        this.removedAt.set(id, version);
        removed.push(id);
      }
    }
    return removed;
  }

  // The job version at which the object was last changed or removed, as far as we know.
  lastChange(id) {
    return Math.max(this.revisions.get(id) ?? -1, this.removedAt.get(id) ?? -1, this.floor);
  }

  // Pending edits: `overlay` is rebuilt by the caller from the edits still waiting for an ack.
  setOverlay(overlay) {
    const ids = [...new Set([...this.overlay.keys(), ...overlay.keys()])];
    this.overlay = overlay;
    this.changed({ ids });
  }

  get(id) {
    if (this.overlay.has(id)) return this.overlay.get(id);
    return this.committed.get(id) ?? null;
  }

  *entries() {
    for (const [id, entry] of this.committed) {
      if (this.overlay.has(id)) continue;
      yield [id, entry];
    }
    for (const [id, entry] of this.overlay) {
      if (entry) yield [id, entry];
    }
  }

  // What is drawn on `frame`: shapes, and tracks at their interpolated position.
  onFrame(frame) {
    const drawn = [];
    for (const [id, entry] of this.entries()) {
      const found = drawnOn(id, entry, frame);
      if (found) drawn.push(found);
    }
    return drawn.sort(byDrawingOrder);
  }

  // `drawn` (what onFrame gave for `frame`) with the objects `ids` taken again from the store.
  patchFrame(drawn, ids, frame) {
    const touched = new Set(ids);
    const patched = drawn.filter((item) => !touched.has(item.id));
    for (const id of touched) {
      const entry = this.get(id);
      const found = entry && drawnOn(id, entry, frame);
      if (found) patched.push(found);
    }
    return patched.sort(byDrawingOrder);
  }

  tagsOn(frame) {
    const tags = [];
    for (const [id, { kind, object }] of this.entries()) {
      if (kind === "tag" && object.frame === frame) tags.push({ id, object });
    }
    return tags;
  }
}

// How an object shows on `frame`: shapes on their frame, tracks where they are not outside.
function drawnOn(id, { kind, object }, frame) {
  if (kind === "shape") return object.frame === frame ? { id, kind, object, shape: object } : null;
  if (kind !== "track") return null;
  const shape = trackShapeAt(object, frame);
  return shape && !shape.outside ? { id, kind, object, shape } : null;
}

function byDrawingOrder(a, b) {
  return a.shape.z_order - b.shape.z_order || a.id - b.id;
}
