// The job workspace: one job's frames and annotations, edited live with everyone else in its
// room. Every edit is a command over the websocket, shown at once and confirmed (or undone,
// with the reason) when the server answers.

import { api } from "../api.js";
import { el } from "../dom.js";
import { Viewer } from "./canvas.js";
import { creating, deleting, PendingEdits, updating } from "./edits.js";
import { FrameLoader } from "./frames.js";
import { rounded, translated } from "./geometry.js";
import { trackShapeAt, withKeyframe, withoutKeyframe } from "./interpolate.js";
import { bindKeys } from "./keys.js";
import { Panels } from "./panels.js";
import { newCid, RoomClient } from "./room.js";
import { AnnotationStore } from "./store.js";
import { Interaction } from "./tools.js";

const metrics = (window.__palimpsest ??= { metrics: {} }).metrics;

export async function openWorkspace(view, jobId) {
  const started = performance.now();
  const [job, meta, labels] = await Promise.all([
    api.get(`/api/jobs/${jobId}`),
    api.get(`/api/jobs/${jobId}/data/meta`),
    api.all("/api/labels", { job_id: jobId }),
  ]);
  const me = await api.me();
  const workspace = new Workspace(view, job, meta, labels, me);
  window.__palimpsest.workspace = workspace;
  workspace.start(started);
  return () => workspace.close();
}

export class Workspace {
  constructor(view, job, meta, labels, me) {
    this.job = job;
    this.meta = meta;
    this.labels = labels.filter((label) => !label.has_parent);
    this.labelById = new Map(labels.map((label) => [label.id, label]));
    this.me = me;
    this.users = new Map([[me.id, me.username]]);
    this.frame = job.start_frame;
    this.selected = null;
    this.label = this.labels[0]?.id ?? null;
    this.trackMode = false;
    this.clipboard = null;
    this.members = new Map();
    this.session = null;
    this.readOnly = false;
    this.past = null; // {version, store} while the time slider is off live
    this.live = new AnnotationStore();
    this.pending = new PendingEdits(this.live);
    this.frames = new FrameLoader(job.id, job.start_frame, job.stop_frame);
    this.build(view);
    this.viewer = new Viewer(this.canvas, this.baseCanvas);
    for (const label of labels) this.viewer.colors.set(label.id, label.color);
    this.interaction = new Interaction(this.viewer, this);
    this.panels = new Panels(this, this.sidebar);
    this.unbindKeys = bindKeys(this);
    this.live.onChange((change) => this.annotationsChanged(change));
  }

  build(view) {
    this.baseCanvas = el("canvas", { id: "frame-base" });
    this.canvas = el("canvas", { id: "frame-canvas", tabIndex: 0 });
    this.sidebar = el("aside", { className: "sidebar" });
    this.toolbar = el("div", { className: "toolbar" });
    this.root = el(
      "div",
      { className: "workspace", dataset: { job: this.job.id } },
      this.toolbar,
      el("div", { className: "workspace-main" }, el("div", { className: "stage" }, this.baseCanvas, this.canvas), this.sidebar),
      el("div", { id: "toasts" }),
    );
    view.replaceChildren(this.root);
  }

  get store() {
    return this.past ? this.past.store : this.live;
  }

  start(started) {
    this.startedAt = started;
    this.panels.buildToolbar(this.toolbar);
    this.room = new RoomClient(api.socketUrl(`/ws/jobs/${this.job.id}`), {
      welcome: (frame) => this.welcome(frame),
      snapshot: (frame) => this.live.loadSnapshot(frame),
      event: (frame) => this.event(frame),
      ack: (frame) => this.ack(frame),
      reject: (frame) => this.reject(frame),
      presence: (frame) => this.presence(frame),
      status: (status, reason) => this.panels.connection(status, reason),
      error: (detail) => this.toast(`Server: ${detail}`, "error"),
    });
    this.room.connect();
    this.showFrame(this.frame);
  }

  close() {
    this.room.close();
    this.unbindKeys();
    if (window.__palimpsest.workspace === this) window.__palimpsest.workspace = null;
  }

  // The room

  welcome(frame) {
    this.session = frame.session;
    this.members = new Map();
    for (const member of frame.members) this.rememberMember(member);
    this.panels.members();
  }

  rememberMember(member) {
    this.users.set(member.user_id, member.username);
    if (member.session === this.session) return;
    this.members.set(member.session, member);
  }

  event(frame) {
    if (frame.actor !== this.me.id) this.remoteEventAt = performance.now();
    this.live.applyEvent(frame);
    const created = frame.name === "AnnotationsCreated" ? frame.data : null;
    if (frame.cid && this.pending.settle(frame.cid, created)) this.panels.saving();
    this.panels.historyEvent(frame);
  }

  ack(frame) {
    const edit = this.pending.get(frame.cid);
    let committed = null;
    if (edit?.frame.type === "create") committed = frame.result;
    else if (edit?.frame.type === "update") committed = { [`${edit.frame.kind}s`]: [frame.result] };
    // Shown at once, unless an event has already brought something newer of the object.
    if (committed) this.live.putAll(committed, frame.version, { unlessNewer: true });
    this.pending.settle(frame.cid, committed);
    this.panels.saving();
    if (frame.result?.refused?.length) {
      this.toast(`Left as others made them: ${frame.result.refused.join(", ")}`, "warning");
    }
  }

  reject(frame) {
    const edit = this.pending.settle(frame.cid);
    this.panels.saving();
    if (frame.reason === "conflict" && edit?.frame.type === "update" && frame.current) {
      this.panels.conflict(frame, edit);
      return;
    }
    const fields = Object.entries(frame.fields || {})
      .map(([name, problems]) => `${name}: ${problems.join(", ")}`)
      .join("; ");
    this.toast(`Rejected (${frame.reason}): ${frame.detail}${fields ? ` — ${fields}` : ""}`, "error");
  }

  presence(frame) {
    for (const member of frame.members) this.rememberMember(member);
    for (const session of frame.left || []) this.members.delete(session);
    this.othersChanged();
    this.panels.members();
  }

  pointerAt([x, y]) {
    this.room?.presence({ frame: this.frame, cursor: [round(x), round(y)] });
  }

  othersChanged() {
    const cursors = [];
    const highlights = new Map();
    for (const member of this.members.values()) {
      if (member.frame !== this.frame) continue;
      if (member.cursor) {
        cursors.push({ x: member.cursor[0], y: member.cursor[1], color: member.color, name: member.username });
      }
      if (member.selected !== null && member.selected !== undefined) {
        highlights.set(member.selected, member.color);
      }
    }
    this.viewer.cursors = cursors;
    this.viewer.highlights = highlights;
    this.viewer.requestDraw();
  }

  // What is shown

  annotationsChanged(change) {
    if (this.past) return;
    this.refreshObjects(change?.ids);
    if (change?.event && change.event.actor !== this.me.id && this.remoteEventAt) {
      const arrived = this.remoteEventAt;
      this.viewer.onDrawn = () => {
        metrics.lastRemoteEventShownMs = performance.now() - arrived;
        metrics.lastRemoteEventShownAt = performance.timeOrigin + performance.now();
        metrics.lastRemoteEventVersion = change.event.version;
        this.viewer.onDrawn = null;
      };
    }
  }

  // The objects drawn on this frame: all again, or only `ids` when just they changed.
  refreshObjects(ids = null) {
    const store = this.store;
    const objects = ids && this.drawnFrame === this.frame
      ? store.patchFrame(this.viewer.objects, ids, this.frame)
      : store.onFrame(this.frame);
    this.drawnFrame = this.frame;
    this.viewer.setObjects(objects);
    if (this.selected !== null && !store.get(this.selected)) this.select(null);
    this.schedulePanels();
  }

  // The side panels follow a moment after the canvas, so a busy frame draws first.
  schedulePanels() {
    if (this.panelsDue) return;
    this.panelsDue = setTimeout(() => {
      this.panelsDue = null;
      this.panels.objects();
      this.panels.details();
    }, 30);
  }

  async showFrame(frame) {
    frame = Math.max(this.job.start_frame, Math.min(this.job.stop_frame, frame));
    this.frame = frame;
    this.interaction.cancelDrawing();
    this.panels.frameChanged();
    this.refreshObjects();
    this.othersChanged();
    this.room.presence({ frame });
    try {
      const image = await this.frames.get(frame);
      if (this.frame !== frame) return;
      const info = this.meta.frames[frame - this.job.start_frame] || this.meta.frames[0];
      this.viewer.setImage(image, info?.width ?? image.width, info?.height ?? image.height);
      if (metrics.firstFrameShownMs === undefined) {
        this.viewer.onDrawn = () => {
          metrics.firstFrameShownMs = performance.now() - this.startedAt;
          metrics.firstFrameSinceNavigationMs = performance.now();
          this.viewer.onDrawn = null;
        };
      }
      this.frames.prefetch(frame);
    } catch (error) {
      this.toast(String(error.message || error), "error");
    }
  }

  selectedDrawn() {
    return this.viewer.objects.find((drawn) => drawn.id === this.selected) || null;
  }

  select(id) {
    if (id === this.selected) return;
    this.selected = id;
    this.viewer.selected = id;
    this.viewer.requestDraw();
    this.room?.presence({ selected: id !== null && id > 0 ? id : null });
    this.panels.objects();
    this.panels.details();
  }

  // Edits

  send(frame, effect, extra = {}) {
    if (this.readOnly) {
      this.toast("This is a past version: go back to live to edit", "warning");
      return null;
    }
    const cid = newCid();
    this.room.command({ ...frame, cid }); // out first; showing it here can wait a moment
    this.pending.add(cid, { effect, frame, ...extra });
    this.panels.saving();
    return cid;
  }

  defaultAttributes(labelId) {
    const label = this.labelById.get(labelId);
    return (label?.attributes || []).map((spec) => ({ spec_id: spec.id, value: spec.default_value ?? "" }));
  }

  topZ() {
    let top = 0;
    for (const { shape } of this.viewer.objects) top = Math.max(top, shape.z_order ?? 0);
    return top;
  }

  createShape(shape) {
    if (this.label === null) {
      this.toast("Add a label to the task before drawing", "error");
      return;
    }
    const geometry = rounded(shape);
    const attributes = this.defaultAttributes(this.label);
    const common = { occluded: false, outside: false, z_order: this.topZ() + 1, rotation: geometry.rotation ?? 0 };
    if (this.trackMode) {
      const track = {
        label_id: this.label,
        frame: this.frame,
        group: 0,
        source: "manual",
        attributes: [],
        shapes: [{ type: geometry.type, frame: this.frame, points: geometry.points, attributes, ...common }],
      };
      this.createObjects("track", track);
    } else {
      const object = { type: geometry.type, label_id: this.label, frame: this.frame, group: 0, source: "manual", points: geometry.points, attributes, ...common };
      this.createObjects("shape", object);
    }
  }

  createObjects(kind, object) {
    const { id, effect } = creating(kind, object);
    const frame = { type: "create", tags: [], shapes: [], tracks: [] };
    frame[`${kind}s`] = [object];
    this.send(frame, effect, {
      committed: (objects) => {
        const created = objects[`${kind}s`]?.[0];
        if (created && this.selected === id) {
          this.selected = null; // so that select() announces the real id
          this.select(created.id);
        }
      },
    });
    if (kind !== "tag") this.select(id);
  }

  addTag() {
    if (this.label === null) return;
    const tag = { label_id: this.label, frame: this.frame, group: 0, source: "manual", attributes: this.defaultAttributes(this.label) };
    this.createObjects("tag", tag);
  }

  // The object `id` changed on this frame to `shape` (moved, reshaped, rotated).
  reshape(id, shape) {
    const entry = this.store.get(id);
    if (!entry) return;
    const geometry = rounded(shape);
    if (entry.kind === "track") {
      const current = trackShapeAt(entry.object, this.frame);
      const keyframe = { ...current, points: geometry.points, rotation: geometry.rotation ?? 0, elements: undefined };
      this.update(id, "track", { shapes: withKeyframe(entry.object, keyframe) });
    } else {
      const changes = { points: geometry.points };
      if (geometry.rotation !== undefined && geometry.rotation !== entry.object.rotation) changes.rotation = geometry.rotation;
      if (geometry.elements?.length) changes.elements = geometry.elements;
      this.update(id, "shape", changes);
    }
  }

  update(id, kind, changes) {
    if (id < 0) {
      this.toast("Wait for the object to be saved before changing it", "warning");
      return;
    }
    const frame = { type: "update", kind, id, base: this.live.version, changes };
    this.send(frame, updating(id, kind, changes));
  }

  // A per-keyframe field of a track (outside, occluded) or of a shape, on this frame.
  setShapeField(id, field, value) {
    const entry = this.store.get(id);
    if (!entry) return;
    if (entry.kind === "track") {
      const current = trackShapeAt(entry.object, this.frame);
      if (!current) return;
      this.update(id, "track", { shapes: withKeyframe(entry.object, { ...current, [field]: value }) });
    } else {
      this.update(id, entry.kind, { [field]: value });
    }
  }

  toggleKeyframe(id) {
    const entry = this.store.get(id);
    if (entry?.kind !== "track") return;
    const current = trackShapeAt(entry.object, this.frame);
    if (current?.keyframe) {
      const rest = withoutKeyframe(entry.object, this.frame);
      if (!rest.length) {
        this.toast("A track keeps at least one keyframe", "warning");
        return;
      }
      this.update(id, "track", { shapes: rest });
    } else if (current) {
      this.update(id, "track", { shapes: withKeyframe(entry.object, current) });
    }
  }

  remove(ids) {
    const targets = ids
      .map((id) => [id, this.store.get(id)])
      .filter(([id, entry]) => entry && id > 0)
      .map(([id, entry]) => ({ kind: entry.kind, id, base: this.live.version }));
    if (!targets.length) return;
    this.send({ type: "delete", objects: targets }, deleting(targets.map((t) => t.id)));
    if (targets.some((t) => t.id === this.selected)) this.select(null);
  }

  zOrder(id, top) {
    const entry = this.store.get(id);
    if (!entry) return;
    const zs = this.viewer.objects.map(({ shape }) => shape.z_order ?? 0);
    const z = top ? Math.max(0, ...zs) + 1 : Math.min(0, ...zs) - 1;
    this.setShapeField(id, "z_order", z);
  }

  copy() {
    const drawn = this.selectedDrawn();
    if (drawn) {
      this.clipboard = { kind: drawn.kind, object: drawn.object, shape: drawn.shape };
      this.toast("Copied", "info");
    }
  }

  paste() {
    if (!this.clipboard) return;
    const { kind, object, shape } = this.clipboard;
    const offset = object.frame === this.frame || kind === "track" ? 10 : 0;
    const placed = translated(shape, offset, offset);
    const base = { label_id: object.label_id, frame: this.frame, group: 0, source: "manual" };
    if (kind === "track") {
      const keyframe = { type: placed.type, frame: this.frame, points: placed.points, occluded: placed.occluded, outside: false, z_order: this.topZ() + 1, rotation: placed.rotation ?? 0, attributes: placed.attributes ?? [] };
      this.createObjects("track", { ...base, attributes: object.attributes, shapes: [keyframe] });
    } else {
      const copy = { ...object, ...base, points: placed.points, elements: placed.elements ?? [], z_order: this.topZ() + 1 };
      delete copy.id;
      if (copy.elements) copy.elements = copy.elements.map(({ id, ...rest }) => ({ ...rest, frame: this.frame }));
      this.createObjects("shape", copy);
    }
  }

  undo() {
    this.sendHistory("undo");
  }

  redo() {
    this.sendHistory("redo");
  }

  sendHistory(type) {
    this.send({ type }, () => {});
  }

  // Time travel: the job as it was at `version`, read-only; null goes back to live.
  async travelTo(version) {
    if (version === null || version >= this.live.version) {
      this.past = null;
      this.readOnly = false;
      this.viewer.readOnly = false;
      this.root.classList.remove("past");
      this.refreshObjects();
      this.panels.timeTravel();
      return;
    }
    const data = await api.get(`/api/jobs/${this.job.id}/annotations`, { at_version: version });
    const store = new AnnotationStore();
    store.loadData(data, version);
    this.past = { version, store };
    this.readOnly = true;
    this.viewer.readOnly = true;
    this.interaction.setTool("select");
    this.root.classList.add("past");
    this.refreshObjects();
    this.panels.timeTravel();
  }

  toast(message, level = "info") {
    const toast = el("div", { className: `toast ${level}` }, message);
    this.root.querySelector("#toasts").append(toast);
    setTimeout(() => toast.remove(), level === "error" ? 8000 : 3000);
  }
}

function round(value) {
  return Math.round(value * 10) / 10;
}
