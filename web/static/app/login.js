// The sign-in form.

import { api } from "./api.js";
import { el } from "./dom.js";

export function showLogin(view, done) {
  const username = el("input", { name: "username", autocomplete: "username", required: true });
  const password = el("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const problem = el("div", { className: "error", hidden: true });
  const form = el(
    "form",
    { className: "login", id: "login-form" },
    el("h1", {}, "Sign in to Palimpsest"),
    el("label", {}, "Username or email", username),
    el("label", {}, "Password", password),
    problem,
    el("button", { type: "submit" }, "Sign in"),
  );
  form.onsubmit = async (event) => {
    event.preventDefault();
    problem.hidden = true;
    try {
      await api.signIn(username.value.trim(), password.value);
      done();
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    }
  };
  view.replaceChildren(form);
  username.focus();
}
