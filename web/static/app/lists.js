// Lists of projects, tasks and jobs, and a task's page with its jobs.

import { api } from "./api.js";
import { el, formatTime } from "./dom.js";

function table(columns, rows, rowProps = () => ({})) {
  return el(
    "table",
    { className: "list" },
    el("thead", {}, el("tr", {}, columns.map(([title]) => el("th", {}, title)))),
    el(
      "tbody",
      {},
      rows.length
        ? rows.map((row) =>
            el("tr", rowProps(row), columns.map(([, cell]) => el("td", {}, cell(row)))),
          )
        : el("tr", {}, el("td", { colSpan: columns.length, className: "empty" }, "Nothing yet")),
    ),
  );
}

function link(href, text) {
  return el("a", { href }, text);
}

function person(user) {
  return user ? user.username : "";
}

function searchBox(view, placeholder, onSearch) {
  const input = el("input", { type: "search", placeholder, className: "search" });
  let timer = null;
  input.oninput = () => {
    clearTimeout(timer);
    timer = setTimeout(() => onSearch(input.value.trim()), 200);
  };
  return input;
}

async function listPage(view, title, path, params, columns, rowProps) {
  const holder = el("div", {});
  const load = async (search) => {
    const rows = await api.get(path, { ...params, search: search || undefined, page_size: 100 });
    holder.replaceChildren(
      table(columns, rows.results, rowProps),
      rows.count > rows.results.length
        ? el("p", { className: "muted" }, `${rows.results.length} of ${rows.count} shown`)
        : null,
    );
  };
  view.replaceChildren(
    el("div", { className: "page-head" }, el("h1", {}, title), searchBox(view, "Search", load)),
    holder,
  );
  await load("");
}

export function showProjects(view) {
  return listPage(view, "Projects", "/api/projects", {}, [
    ["#", (p) => p.id],
    ["Name", (p) => link(`#/projects/${p.id}`, p.name)],
    ["Owner", (p) => person(p.owner)],
    ["Tasks", (p) => p.tasks?.count ?? ""],
    ["Status", (p) => p.status],
    ["Updated", (p) => formatTime(p.updated_date)],
  ]);
}

export function showTasks(view, params = {}) {
  return listPage(view, params.project_id ? `Tasks of project ${params.project_id}` : "Tasks", "/api/tasks", params, [
    ["#", (t) => t.id],
    ["Name", (t) => link(`#/tasks/${t.id}`, t.name)],
    ["Project", (t) => (t.project_id ? link(`#/projects/${t.project_id}`, t.project_id) : "")],
    ["Frames", (t) => t.size],
    ["Jobs", (t) => t.jobs?.count ?? ""],
    ["Status", (t) => t.status],
    ["Assignee", (t) => person(t.assignee)],
    ["Updated", (t) => formatTime(t.updated_date)],
  ]);
}

const JOB_COLUMNS = [
  ["#", (j) => link(`#/jobs/${j.id}`, `Job ${j.id}`)],
  ["Task", (j) => link(`#/tasks/${j.task_id}`, j.task_name ?? j.task_id)],
  ["Frames", (j) => `${j.start_frame}–${j.stop_frame}`],
  ["Type", (j) => j.type],
  ["Stage", (j) => j.stage],
  ["State", (j) => j.state],
  ["Assignee", (j) => person(j.assignee)],
  ["", (j) => link(`#/jobs/${j.id}`, "Open")],
];

export function showJobs(view) {
  return listPage(view, "Jobs", "/api/jobs", {}, JOB_COLUMNS, (j) => ({ dataset: { job: j.id } }));
}

export async function showTask(view, taskId) {
  const [task, jobs] = await Promise.all([
    api.get(`/api/tasks/${taskId}`),
    api.all("/api/jobs", { task_id: taskId }),
  ]);
  view.replaceChildren(
    el("div", { className: "page-head" }, el("h1", {}, `Task ${task.id}: ${task.name}`)),
    el(
      "p",
      { className: "muted" },
      `${task.size} frames · ${task.mode || ""} · status ${task.status} · owner ${person(task.owner)}`,
    ),
    el("h2", {}, "Jobs"),
    table(JOB_COLUMNS, jobs, (j) => ({ dataset: { job: j.id } })),
  );
}
