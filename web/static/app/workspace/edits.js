// This user's edits still waiting for the server: each lays its effect over the committed
// annotations until its ack (or the event carrying its cid) arrives, or its reject undoes it.

let temporaryId = 0;

export class PendingEdits {
  constructor(store) {
    this.store = store;
    this.edits = new Map(); // cid -> {cid, effect: (overlay) => void, frame}
  }

  get size() {
    return this.edits.size;
  }

  get(cid) {
    return this.edits.get(cid) ?? null;
  }

  add(cid, edit) {
    this.edits.set(cid, { cid, ...edit });
    this.relay();
  }

  // The edit `cid` is done: `committed` (objects as the server wrote them, CVAT's
  // {tags, shapes, tracks}) is handed to the edit before its overlay goes.
  settle(cid, committed = null) {
    const edit = this.edits.get(cid);
    if (!edit) return null;
    this.edits.delete(cid);
    if (committed && edit.committed) edit.committed(committed);
    this.relay();
    return edit;
  }

  relay() {
    const overlay = new Map();
    for (const edit of this.edits.values()) edit.effect(overlay, this.store);
    this.store.setOverlay(overlay);
  }
}

export function temporary() {
  temporaryId -= 1;
  return temporaryId;
}

// Effects

export function creating(kind, object) {
  const id = temporary();
  return { id, effect: (overlay) => overlay.set(id, { kind, object: { ...object, id } }) };
}

export function updating(id, kind, changes) {
  return (overlay, store) => {
    const current = overlay.get(id) ?? store.committed.get(id);
    if (current) overlay.set(id, { kind, object: { ...current.object, ...changes } });
  };
}

export function deleting(ids) {
  return (overlay) => {
    for (const id of ids) overlay.set(id, null);
  };
}
