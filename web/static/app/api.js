// The REST API as the page uses it: token sign-in, JSON in and out, errors as exceptions.

const TOKEN_KEY = "palimpsest.token";
const ORGANIZATION_KEY = "palimpsest.organization";

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

function describe(status, body) {
  if (body && typeof body === "object") {
    if (body.detail) return String(body.detail);
    return Object.entries(body)
      .map(([field, problems]) => `${field}: ${[].concat(problems).join(", ")}`)
      .join("; ");
  }
  return `HTTP ${status}`;
}

export const api = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },

  // The organization requests act in (its slug), or null for everything one may see.
  get organization() {
    return localStorage.getItem(ORGANIZATION_KEY);
  },

  set organization(slug) {
    if (slug) localStorage.setItem(ORGANIZATION_KEY, slug);
    else localStorage.removeItem(ORGANIZATION_KEY);
  },

  async signIn(username, password) {
    const { key } = await this.request("POST", "/api/auth/login", { username, password }, false);
    localStorage.setItem(TOKEN_KEY, key);
    this.self = null;
    return this.me();
  },

  async signOut() {
    try {
      await this.request("POST", "/api/auth/logout");
    } finally {
      localStorage.removeItem(TOKEN_KEY);
      this.self = null;
    }
  },

  async me() {
    if (!this.self) this.self = await this.get("/api/users/self");
    return this.self;
  },

  get(path, params = {}) {
    const query = new URLSearchParams(
      Object.entries(params).filter(([, value]) => value !== undefined && value !== null),
    );
    const suffix = query.toString() ? `?${query}` : "";
    return this.request("GET", `${path}${suffix}`);
  },

  // Every page of a paginated list, concatenated.
  async all(path, params = {}) {
    const results = [];
    for (let page = 1; ; page += 1) {
      const body = await this.get(path, { ...params, page, page_size: 500 });
      results.push(...body.results);
      if (!body.next) return results;
    }
  },

  async request(method, path, body = undefined, authenticated = true) {
    const headers = { Accept: "application/json" };
    if (authenticated && this.token) headers.Authorization = `Token ${this.token}`;
    if (authenticated && this.organization) headers["X-Organization"] = this.organization;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
    const text = await response.text();
    const parsed = text ? safeJson(text) : null;
    if (!response.ok) throw new ApiError(response.status, parsed);
    return parsed;
  },

  // A websocket URL on this server, carrying the token (browsers cannot set its headers).
  socketUrl(path) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}${path}?token=${encodeURIComponent(this.token)}`;
  },

  frameUrl(jobId, number, quality = "compressed") {
    return `/api/jobs/${jobId}/data?type=frame&number=${number}&quality=${quality}`;
  },
};

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}
