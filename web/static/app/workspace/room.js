// The job room's websocket: hello with the last version seen, commands with client ids that
// survive a reconnect (resent with the same ids, so the server writes each once), presence.

const PRESENCE_INTERVAL_MS = 50;
const PING_INTERVAL_MS = 15000;

export class RoomClient {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers; // {welcome, snapshot, event, ack, reject, presence, status, error}
    this.pending = new Map(); // cid -> command frame, in the order sent
    this.version = null; // the last job version applied; sent as `since` on a reconnect
    this.socket = null;
    this.ready = false;
    this.closed = false;
    this.retryDelay = 250;
    this.target = Infinity; // the version `welcome` said the job is at
    this.presenceDue = null;
    this.presenceTimer = null;
  }

  connect() {
    this.socket = new WebSocket(this.url);
    this.handlers.status?.("connecting");
    this.socket.onopen = () => {
      this.retryDelay = 250;
      this.socket.send(JSON.stringify({ type: "hello", since: this.version }));
    };
    this.socket.onmessage = (message) => {
      const parsed = JSON.parse(message.data);
      for (const frame of Array.isArray(parsed) ? parsed : [parsed]) this.receive(frame);
    };
    this.socket.onclose = (close) => {
      this.ready = false;
      clearInterval(this.pinger);
      if (this.closed) return;
      if (close.code >= 4400 && close.code < 4500) {
        this.handlers.status?.("refused", close.reason);
        return;
      }
      this.handlers.status?.("offline");
      setTimeout(() => !this.closed && this.connect(), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 5000);
    };
  }

  receive(frame) {
    switch (frame.type) {
      case "welcome":
        this.target = frame.version;
        this.handlers.welcome?.(frame);
        if (this.version !== null && this.version >= frame.version) this.caughtUp();
        break;
      case "snapshot":
        this.version = frame.version;
        this.handlers.snapshot?.(frame);
        this.caughtUp();
        break;
      case "event":
        if (this.version !== null && frame.version <= this.version) return;
        this.version = frame.version;
        this.handlers.event?.(frame);
        if (this.version >= this.target) this.caughtUp();
        break;
      case "ack":
        if (this.pending.delete(frame.cid)) this.handlers.ack?.(frame);
        break;
      case "reject":
        if (this.pending.delete(frame.cid)) this.handlers.reject?.(frame);
        break;
      case "presence":
        this.handlers.presence?.(frame);
        break;
      case "error":
        this.handlers.error?.(frame.detail);
        break;
      default:
        break;
    }
  }

  caughtUp() {
    if (this.ready) return;
    this.ready = true;
    this.handlers.status?.("live");
    for (const command of this.pending.values()) this.socket.send(JSON.stringify(command));
    this.pinger = setInterval(() => this.sendNow({ type: "ping" }), PING_INTERVAL_MS);
    if (this.presenceDue) this.flushPresence();
  }

  // Sends a command now, or when the socket is back; returns its cid.
  command(frame) {
    const cid = frame.cid ?? newCid();
    const command = { ...frame, cid };
    this.pending.set(cid, command);
    if (this.open) this.socket.send(JSON.stringify(command));
    return cid;
  }

  presence(fields) {
    this.presenceDue = { ...(this.presenceDue || {}), ...fields };
    if (this.presenceTimer === null) {
      this.presenceTimer = setTimeout(() => this.flushPresence(), PRESENCE_INTERVAL_MS);
    }
  }

  flushPresence() {
    this.presenceTimer = null;
    if (!this.open || !this.presenceDue) return;
    this.sendNow({ type: "presence", ...this.presenceDue });
    this.presenceDue = null;
  }

  sendNow(frame) {
    if (this.open) this.socket.send(JSON.stringify(frame));
  }

  // Caught up and still connected (a socket closes a moment before `onclose` says so).
  get open() {
    return this.ready && this.socket?.readyState === WebSocket.OPEN;
  }

  close() {
    this.closed = true;
    clearInterval(this.pinger);
    this.socket?.close();
  }

  // For tests: drops the connection as a network failure would.
  drop() {
    this.ready = false;
    this.socket?.close();
  }
}

export function newCid() {
  if (crypto.randomUUID) return `web-${crypto.randomUUID()}`;
  return `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
