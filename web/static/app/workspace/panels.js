// The workspace's toolbar and side panels: frames, tools, labels, people in the room, the
// objects on the frame, the selected object's details, history with its time slider, and the
// conflict dialog.

import { api } from "../api.js";
import { el, formatTime } from "../dom.js";
import { trackShapeAt } from "./interpolate.js";

const TOOLS = [
  ["select", "Select"],
  ["rectangle", "Rectangle"],
  ["polygon", "Polygon"],
  ["polyline", "Polyline"],
  ["points", "Points"],
  ["ellipse", "Ellipse"],
];
const HISTORY_SHOWN = 100;
const LISTED_OBJECTS = 200;

export class Panels {
  constructor(workspace, sidebar) {
    this.workspace = workspace;
    this.membersBox = el("ul", { id: "members", className: "members" });
    this.objectsBox = el("ul", { id: "objects", className: "objects" });
    this.detailsBox = el("div", { id: "details" });
    this.historyBox = el("ol", { id: "history", className: "history", reversed: true });
    this.slider = el("input", { id: "time-slider", type: "range", min: 0, max: 0, value: 0 });
    this.sliderLabel = el("span", { id: "time-label" }, "Live");
    this.liveButton = el("button", { id: "back-to-live", hidden: true, onclick: () => workspace.travelTo(null) }, "Back to live");
    this.slider.addEventListener("change", () => {
      const version = Number(this.slider.value);
      workspace.travelTo(version >= Number(this.slider.max) ? null : version);
    });
    this.slider.addEventListener("input", () => {
      this.sliderLabel.textContent = `Version ${this.slider.value}`;
    });
    sidebar.append(
      section("People here", this.membersBox),
      section("Objects on this frame", this.objectsBox),
      section("Selected", this.detailsBox),
      section("History", el("div", { className: "time" }, this.slider, this.sliderLabel, this.liveButton), this.historyBox),
    );
    this.loadHistory();
  }

  buildToolbar(toolbar) {
    const workspace = this.workspace;
    const job = workspace.job;
    this.frameInput = el("input", {
      id: "frame-number",
      type: "number",
      min: job.start_frame,
      max: job.stop_frame,
      value: job.start_frame,
      onchange: () => workspace.showFrame(Number(this.frameInput.value)),
    });
    this.frameSlider = el("input", {
      id: "frame-slider",
      type: "range",
      min: job.start_frame,
      max: job.stop_frame,
      value: job.start_frame,
      oninput: () => workspace.showFrame(Number(this.frameSlider.value)),
    });
    this.toolButtons = TOOLS.map(([tool, title]) =>
      el("button", { className: "tool", dataset: { tool }, title, onclick: () => this.chooseTool(tool) }, title),
    );
    this.labelSelect = el(
      "select",
      { id: "label-select", onchange: () => (workspace.label = Number(this.labelSelect.value)) },
      workspace.labels.map((label) => el("option", { value: label.id, style: { color: label.color } }, label.name)),
    );
    this.trackBox = el("input", { id: "track-mode", type: "checkbox", onchange: () => (workspace.trackMode = this.trackBox.checked) });
    this.connectionBadge = el("span", { id: "connection", className: "badge" }, "connecting");
    this.savingBadge = el("span", { id: "saving", className: "badge" }, "All saved");
    toolbar.append(
      el("a", { href: `#/tasks/${job.task_id}`, className: "back" }, "←"),
      el("strong", {}, `Job ${job.id}`),
      el("span", { className: "muted" }, job.task_name ?? ""),
      el("span", { className: "group" },
        el("button", { id: "prev-frame", title: "Previous frame (D)", onclick: () => workspace.showFrame(workspace.frame - 1) }, "◀"),
        this.frameInput,
        el("button", { id: "next-frame", title: "Next frame (F)", onclick: () => workspace.showFrame(workspace.frame + 1) }, "▶"),
        this.frameSlider,
      ),
      el("span", { className: "group" }, this.toolButtons),
      el("span", { className: "group" }, "Label ", this.labelSelect,
        el("label", { title: "Draw tracks instead of shapes" }, this.trackBox, " Track"),
        el("button", { id: "add-tag", onclick: () => workspace.addTag() }, "Tag frame")),
      el("span", { className: "group" },
        el("button", { id: "undo", title: "Undo (Ctrl+Z)", onclick: () => workspace.undo() }, "Undo"),
        el("button", { id: "redo", title: "Redo (Ctrl+Shift+Z)", onclick: () => workspace.redo() }, "Redo"),
        el("button", { id: "fit", title: "Fit the frame", onclick: () => workspace.viewer.fit() }, "Fit"),
      ),
      this.connectionBadge,
      this.savingBadge,
    );
    this.chooseTool("select");
  }

  chooseTool(tool) {
    const workspace = this.workspace;
    if (tool !== "select") workspace.lastTool = tool;
    workspace.interaction.setTool(workspace.readOnly ? "select" : tool);
    for (const button of this.toolButtons) {
      button.classList.toggle("active", button.dataset.tool === workspace.interaction.tool);
    }
    workspace.room?.presence({ tool });
  }

  frameChanged() {
    const frame = this.workspace.frame;
    this.frameInput.value = frame;
    this.frameSlider.value = frame;
    this.workspace.root.dataset.frame = frame;
  }

  connection(status, reason) {
    this.connectionBadge.textContent = reason ? `${status}: ${reason}` : status;
    this.connectionBadge.dataset.status = status;
  }

  saving() {
    const waiting = this.workspace.pending.size;
    this.savingBadge.textContent = waiting ? `Saving ${waiting}…` : "All saved";
    this.savingBadge.dataset.pending = waiting;
  }

  members() {
    const workspace = this.workspace;
    const rows = [...workspace.members.values()].map((member) =>
      el("li", { dataset: { user: member.username } },
        el("span", { className: "swatch", style: { background: member.color } }),
        member.username,
        el("span", { className: "muted" },
          ` frame ${member.frame ?? "?"}`,
          member.selected ? ` · selected #${member.selected}` : "",
          member.tool && member.tool !== "select" ? ` · ${member.tool}` : ""),
      ),
    );
    this.membersBox.replaceChildren(
      el("li", { className: "me" }, el("span", { className: "swatch mine" }), `${workspace.me.username} (you)`),
      ...rows,
    );
  }

  objects() {
    const workspace = this.workspace;
    const store = workspace.store;
    // A frame may hold thousands of objects: list the selected one and the first few hundred.
    const drawn = workspace.viewer.objects;
    const listed = drawn.length > LISTED_OBJECTS
      ? [...drawn.filter((o) => o.id === workspace.selected), ...drawn.slice(0, LISTED_OBJECTS)]
      : drawn;
    const rows = listed.map(({ id, kind, object, shape }) =>
      el("li", {
        className: id === workspace.selected ? "selected" : "",
        dataset: { id, kind },
        onclick: () => workspace.select(id),
      },
        el("span", { className: "swatch", style: { background: this.colorOf(object.label_id) } }),
        `#${id} ${this.labelName(object.label_id)} ${kind === "track" ? "track " : ""}${shape.type}`,
        kind === "track" && shape.keyframe ? el("span", { className: "muted" }, " · keyframe") : ""),
    );
    const tags = store.tagsOn(workspace.frame).map(({ id, object }) =>
      el("li", { dataset: { id, kind: "tag" } },
        el("span", { className: "swatch", style: { background: this.colorOf(object.label_id) } }),
        `#${id} tag ${this.labelName(object.label_id)} `,
        workspace.readOnly ? "" : el("button", { className: "link", onclick: () => workspace.remove([id]) }, "remove")),
    );
    const more = drawn.length - Math.min(drawn.length, LISTED_OBJECTS);
    const note = more > 0 ? el("li", { className: "muted" }, `and ${more} more: select them on the frame`) : "";
    this.objectsBox.replaceChildren(...tags, ...rows, note);
  }

  details() {
    const workspace = this.workspace;
    const entry = workspace.selected === null ? null : workspace.store.get(workspace.selected);
    if (!entry) {
      this.detailsBox.replaceChildren(el("p", { className: "muted" }, "Nothing selected"));
      return;
    }
    const { kind, object } = entry;
    const id = workspace.selected;
    const shape = kind === "track" ? trackShapeAt(object, workspace.frame) : object;
    const disabled = workspace.readOnly;
    const labelSelect = el("select", { id: "object-label", disabled, onchange: () => this.relabel(id, entry, Number(labelSelect.value)) },
      workspace.labels.map((label) => el("option", { value: label.id, selected: label.id === object.label_id }, label.name)));
    const rows = [el("div", {}, `#${id} ${kind}${shape ? ` · ${shape.type}` : ""}`), el("label", {}, "Label ", labelSelect)];
    if (shape && kind !== "tag") {
      rows.push(
        checkbox("Occluded (Q)", "object-occluded", shape.occluded, disabled, (v) => workspace.setShapeField(id, "occluded", v)),
        el("div", {}, `z-order ${shape.z_order ?? 0} `,
          el("button", { disabled, onclick: () => workspace.zOrder(id, true) }, "To front"),
          el("button", { disabled, onclick: () => workspace.zOrder(id, false) }, "To back")),
      );
    }
    if (kind === "track" && shape) {
      rows.push(
        checkbox("Outside (O)", "object-outside", shape.outside, disabled, (v) => workspace.setShapeField(id, "outside", v)),
        checkbox("Keyframe (K)", "object-keyframe", shape.keyframe, disabled, () => workspace.toggleKeyframe(id)),
        el("div", { className: "muted" }, `keyframes: ${object.shapes.map((s) => s.frame).join(", ")}`),
      );
    }
    rows.push(...this.attributeInputs(id, kind, object, shape, disabled));
    rows.push(el("button", { id: "delete-object", disabled, onclick: () => workspace.remove([id]) }, "Delete (Del)"));
    this.detailsBox.replaceChildren(...rows);
  }

  attributeInputs(id, kind, object, shape, disabled) {
    const label = this.workspace.labelById.get(object.label_id);
    return (label?.attributes || []).map((spec) => {
      const holder = spec.mutable && kind === "track" ? shape : object;
      const current = (holder?.attributes || []).find((a) => a.spec_id === spec.id)?.value ?? spec.default_value;
      const commit = (value) => this.setAttribute(id, kind, object, shape, spec, value);
      return el("label", { className: "attribute", dataset: { attribute: spec.name } }, `${spec.name} `, attributeInput(spec, current, disabled, commit));
    });
  }

  setAttribute(id, kind, object, shape, spec, value) {
    const workspace = this.workspace;
    const replace = (list) => [...(list || []).filter((a) => a.spec_id !== spec.id), { spec_id: spec.id, value: String(value) }];
    if (kind === "track" && spec.mutable) workspace.setShapeField(id, "attributes", replace(shape.attributes));
    else workspace.update(id, kind, { attributes: replace(object.attributes) });
  }

  relabel(id, entry, labelId) {
    const workspace = this.workspace;
    const label = workspace.labelById.get(labelId);
    const defaults = (mutable) => (label?.attributes || [])
      .filter((spec) => mutable === undefined || spec.mutable === mutable)
      .map((spec) => ({ spec_id: spec.id, value: spec.default_value ?? "" }));
    if (entry.kind === "track") {
      workspace.update(id, "track", {
        label_id: labelId,
        attributes: defaults(false),
        shapes: entry.object.shapes.map((s) => ({ ...s, attributes: defaults(true) })),
      });
    } else {
      workspace.update(id, entry.kind, { label_id: labelId, attributes: defaults() });
    }
  }

  colorOf(labelId) {
    return this.workspace.labelById.get(labelId)?.color ?? "#888";
  }

  labelName(labelId) {
    return this.workspace.labelById.get(labelId)?.name ?? `label ${labelId}`;
  }

  // History

  async loadHistory() {
    const jobId = this.workspace.job.id;
    try {
      const head = await api.get(`/api/jobs/${jobId}/history`, { page_size: 1 });
      const page = Math.max(1, Math.ceil(head.count / HISTORY_SHOWN));
      const body = await api.get(`/api/jobs/${jobId}/history`, { page_size: HISTORY_SHOWN, page });
      const shown = new Set([...this.historyBox.children].map((item) => Number(item.dataset.version)));
      const entries = body.results.filter((entry) => !shown.has(entry.version)).map((entry) => ({
        version: entry.version,
        type: entry.type,
        who: entry.actor?.username ?? "system",
        time: entry.timestamp,
        objects: entry.objects,
      }));
      for (const entry of entries) this.addHistory(entry, false);
      this.sortHistory();
    } catch (error) {
      this.workspace.toast(`History: ${error.message}`, "error");
    }
  }

  historyEvent(frame) {
    this.addHistory({
      version: frame.version,
      type: frame.name,
      who: this.workspace.users.get(frame.actor) ?? (frame.actor ? `user ${frame.actor}` : "system"),
      time: frame.time,
      objects: touchedBy(frame),
    }, true);
  }

  addHistory(entry, live) {
    const item = el("li", { dataset: { version: entry.version }, title: formatTime(entry.time) },
      el("button", { className: "link", onclick: () => this.workspace.travelTo(entry.version) }, `v${entry.version}`),
      ` ${entry.who} · ${entry.type}`,
      el("span", { className: "muted" }, describeObjects(entry.objects)));
    this.historyBox.prepend(item);
    while (this.historyBox.children.length > HISTORY_SHOWN) this.historyBox.lastChild.remove();
    if (live) this.timeTravel();
  }

  sortHistory() {
    const items = [...this.historyBox.children].sort((a, b) => b.dataset.version - a.dataset.version);
    this.historyBox.replaceChildren(...items);
    this.timeTravel();
  }

  timeTravel() {
    const workspace = this.workspace;
    const latest = workspace.live.version;
    this.slider.max = latest;
    if (workspace.past) {
      this.slider.value = workspace.past.version;
      this.sliderLabel.textContent = `Version ${workspace.past.version} (read-only)`;
      this.liveButton.hidden = false;
    } else {
      this.slider.value = latest;
      this.sliderLabel.textContent = `Live (version ${latest})`;
      this.liveButton.hidden = true;
    }
  }

  // A conflict: show the other person's version and offer to re-apply ours.
  conflict(reject, edit) {
    const workspace = this.workspace;
    const { id, kind, changes } = edit.frame;
    const theirs = Object.fromEntries(Object.keys(changes).map((field) => [field, reject.current[field]]));
    const dialog = el("div", { id: "conflict", className: "dialog" },
      el("h3", {}, `Someone else changed ${kind} #${id}`),
      el("p", {}, reject.detail),
      el("div", { className: "versions" },
        el("div", {}, el("strong", {}, "Their version (now saved)"), el("pre", { id: "conflict-theirs" }, JSON.stringify(theirs, null, 1))),
        el("div", {}, el("strong", {}, "Yours"), el("pre", { id: "conflict-mine" }, JSON.stringify(changes, null, 1)))),
      el("button", { id: "conflict-keep", onclick: () => dialog.remove() }, "Keep theirs"),
      el("button", {
        id: "conflict-reapply",
        onclick: () => {
          dialog.remove();
          workspace.update(id, kind, changes); // based on the version that now includes theirs
        },
      }, "Re-apply mine"));
    workspace.root.querySelector("#conflict")?.remove();
    workspace.root.append(dialog);
  }
}

function section(title, ...children) {
  return el("section", {}, el("h3", {}, title), ...children);
}

function checkbox(text, id, checked, disabled, onchange) {
  const input = el("input", { id, type: "checkbox", checked: Boolean(checked), disabled, onchange: () => onchange(input.checked) });
  return el("label", { className: "check" }, input, ` ${text}`);
}

function attributeInput(spec, current, disabled, commit) {
  if (spec.input_type === "checkbox") {
    const box = el("input", { type: "checkbox", checked: String(current) === "true", disabled, onchange: () => commit(box.checked) });
    return box;
  }
  if (spec.input_type === "select" || spec.input_type === "radio") {
    const select = el("select", { disabled, onchange: () => commit(select.value) },
      spec.values.map((value) => el("option", { value, selected: value === current }, value)));
    return select;
  }
  const input = el("input", {
    type: spec.input_type === "number" ? "number" : "text",
    value: current ?? "",
    disabled,
    onchange: () => commit(input.value),
  });
  if (spec.input_type === "number" && spec.values?.length === 3) {
    [input.min, input.max, input.step] = spec.values;
  }
  return input;
}

function touchedBy(frame) {
  const data = frame.data || {};
  const ids = (part) => ({
    tags: (part?.tags || []).map((o) => (typeof o === "object" ? o.id : o)),
    shapes: (part?.shapes || []).map((o) => (typeof o === "object" ? o.id : o)),
    tracks: (part?.tracks || []).map((o) => (typeof o === "object" ? o.id : o)),
  });
  if (frame.name === "EditUndone" || frame.name === "EditRedone") {
    const removed = ids(data.remove);
    const restored = ids(data.restore);
    return {
      tags: [...removed.tags, ...restored.tags],
      shapes: [...removed.shapes, ...restored.shapes],
      tracks: [...removed.tracks, ...restored.tracks],
    };
  }
  return ids(data);
}

function describeObjects(objects) {
  if (!objects) return "";
  const parts = [];
  for (const kind of ["tags", "shapes", "tracks"]) {
    const ids = objects[kind] || [];
    if (ids.length) parts.push(`${kind.slice(0, -1)} ${ids.slice(0, 5).map((id) => `#${id}`).join(", ")}${ids.length > 5 ? ` +${ids.length - 5}` : ""}`);
  }
  return parts.length ? ` · ${parts.join("; ")}` : "";
}
