// Keyboard shortcuts, as in CVAT's manual (2.30): D/F and arrows for frames, N to draw or end
// a shape, Esc, Del, Ctrl+Z / Ctrl+Shift+Z, Ctrl+C / Ctrl+V, K keyframe, O outside, Q occluded.

export function bindKeys(workspace) {
  const handler = (event) => {
    if (event.target.closest?.("input, select, textarea")) return;
    const key = event.key.toLowerCase();
    const ctrl = event.ctrlKey || event.metaKey;
    const action = ctrl ? withCtrl(workspace, key, event.shiftKey) : plain(workspace, key, event);
    if (action) {
      event.preventDefault();
      action();
    }
  };
  window.addEventListener("keydown", handler);
  return () => window.removeEventListener("keydown", handler);
}

function withCtrl(workspace, key, shift) {
  if (key === "z") return shift ? () => workspace.redo() : () => workspace.undo();
  if (key === "y") return () => workspace.redo();
  if (key === "c") return () => workspace.copy();
  if (key === "v") return () => workspace.paste();
  return null;
}

function plain(workspace, key, event) {
  const interaction = workspace.interaction;
  const selected = workspace.selected;
  switch (key) {
    case "d":
    case "arrowleft":
      return () => workspace.showFrame(workspace.frame - 1);
    case "f":
    case "arrowright":
      return () => workspace.showFrame(workspace.frame + 1);
    case "n":
      return () => {
        if (interaction.finishPath()) return;
        if (interaction.tool === "select") workspace.panels.chooseTool(workspace.lastTool ?? "rectangle");
      };
    case "enter":
      return () => interaction.finishPath();
    case "escape":
      return () => {
        if (interaction.drawing) interaction.cancelDrawing();
        else if (interaction.tool !== "select") workspace.panels.chooseTool("select");
        else workspace.select(null);
      };
    case "delete":
    case "backspace":
      return selected !== null ? () => workspace.remove([selected]) : null;
    case "k":
      return selected !== null ? () => workspace.toggleKeyframe(selected) : null;
    case "o":
      return selected !== null ? () => toggle(workspace, selected, "outside") : null;
    case "q":
      return selected !== null ? () => toggle(workspace, selected, "occluded") : null;
    default:
      return event.key === "+" && selected !== null ? () => workspace.zOrder(selected, true) : null;
  }
}

function toggle(workspace, id, field) {
  const drawn = workspace.selectedDrawn();
  if (drawn) workspace.setShapeField(id, field, !drawn.shape[field]);
}
