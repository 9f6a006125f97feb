// Frame images, fetched with the page's token, decoded off the main thread, kept in a small
// cache, with the next frames fetched ahead.

import { api } from "../api.js";

const KEEP = 48;
const AHEAD = 3;

export class FrameLoader {
  constructor(jobId, firstFrame, lastFrame) {
    this.jobId = jobId;
    this.first = firstFrame;
    this.last = lastFrame;
    this.cache = new Map(); // frame -> Promise<ImageBitmap>
  }

  get(frame) {
    const found = this.cache.get(frame);
    if (found) {
      this.cache.delete(frame);
      this.cache.set(frame, found); // most recently used last
      return found;
    }
    const loading = this.fetch(frame);
    this.cache.set(frame, loading);
    loading.catch(() => this.cache.delete(frame));
    while (this.cache.size > KEEP) this.cache.delete(this.cache.keys().next().value);
    return loading;
  }

  async fetch(frame) {
    const response = await fetch(api.frameUrl(this.jobId, frame), {
      headers: { Authorization: `Token ${api.token}` },
    });
    if (!response.ok) throw new Error(`frame ${frame}: HTTP ${response.status}`);
    return createImageBitmap(await response.blob());
  }

  prefetch(frame) {
    for (let next = frame + 1; next <= Math.min(this.last, frame + AHEAD); next += 1) {
      if (!this.cache.has(next)) this.get(next).catch(() => {});
    }
  }
}
