// The page's router: #/login, #/projects, #/tasks, #/tasks/ID, #/jobs, #/jobs/ID (the workspace).

import { api, ApiError } from "./api.js";
import { el } from "./dom.js";
import { showLogin } from "./login.js";
import { showJobs, showProjects, showTask, showTasks } from "./lists.js";

const view = document.getElementById("view");
let closeCurrent = null;

const ROUTES = [
  [/^#\/projects$/, () => showProjects(view)],
  [/^#\/tasks$/, () => showTasks(view)],
  [/^#\/projects\/(\d+)$/, (id) => showTasks(view, { project_id: id })],
  [/^#\/tasks\/(\d+)$/, (id) => showTask(view, Number(id))],
  [/^#\/jobs$/, () => showJobs(view)],
  [
    /^#\/jobs\/(\d+)$/,
    async (id) => {
      const { openWorkspace } = await import("./workspace/workspace.js");
      return openWorkspace(view, Number(id));
    },
  ],
];

async function route() {
  if (closeCurrent) {
    closeCurrent();
    closeCurrent = null;
  }
  const hash = location.hash || "#/tasks";
  if (hash === "#/login" || !api.token) {
    document.body.classList.remove("signed-in");
    showLogin(view, () => (location.hash = hash === "#/login" ? "#/tasks" : hash));
    return;
  }
  try {
    const me = await api.me();
    document.body.classList.add("signed-in");
    document.getElementById("whoami").innerHTML = "";
    document.getElementById("whoami").append(whoAmI(me));
    for (const [pattern, show] of ROUTES) {
      const match = hash.match(pattern);
      if (match) {
        closeCurrent = (await show(...match.slice(1))) || null;
        return;
      }
    }
    view.textContent = `Nothing at ${hash}`;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      localStorage.removeItem("palimpsest.token");
      location.hash = "#/login";
      return;
    }
    view.innerHTML = "";
    view.append(errorBox(error));
  }
}

function whoAmI(me) {
  const span = document.createElement("span");
  span.append(organizationChooser(), " ", me.username);
  const out = document.createElement("button");
  out.textContent = "Sign out";
  out.className = "link";
  out.onclick = async () => {
    await api.signOut();
    location.hash = "#/login";
  };
  span.append(" ", out);
  return span;
}

// Where lists look and new things are made: one organization, or everything one may see.
function organizationChooser() {
  const select = el("select", { id: "organization", title: "Organization" },
    el("option", { value: "" }, "All my work"));
  api.all("/api/organizations").then((organizations) => {
    for (const organization of organizations) {
      select.append(el("option", { value: organization.slug }, organization.name || organization.slug));
    }
    select.value = api.organization ?? "";
    if (select.value !== (api.organization ?? "")) api.organization = null; // left or gone
  }).catch(() => {}); // the chooser stays at "All my work"
  select.onchange = () => {
    api.organization = select.value || null;
    route();
  };
  return select;
}

export function errorBox(error) {
  const box = document.createElement("div");
  box.className = "error";
  box.textContent = error.message || String(error);
  return box;
}

window.addEventListener("hashchange", route);
route();
