// The signed-in user's own socket (/ws/me/): activity in every room they belong to (for live
// unread counts) and new mentions. Reconnects with back-off; stops on 4401 (not logged in).

export class MeConnection {
  constructor({ onActivity = () => {}, onMention = () => {}, onState = () => {},
                minDelayMs = 500, maxDelayMs = 15000 }) {
    this.onActivity = onActivity; // ({room, seq}) => ...
    this.onMention = onMention; // (message) => ...
    this.onState = onState;
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.attempt = 0;
    this.stopped = false;
  }

  start() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/me/`);
    this.socket = socket;
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "ready") { this.attempt = 0; this._state("live"); }
      else if (frame.type === "room.activity") this.onActivity(frame);
      else if (frame.type === "mention.new") this.onMention(frame.message);
    };
    socket.onclose = (event) => {
      if (this.stopped || event.code === 4401) { this._state("closed"); return; }
      this._state("offline");
      const ceiling = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this.attempt);
      this.attempt += 1;
      setTimeout(() => { if (!this.stopped) this.start(); }, ceiling / 2 + Math.random() * ceiling / 2);
    };
  }

  /** The state is also shown on <html data-me> for people's tools and the browser tests. */
  _state(state) {
    document.documentElement.dataset.me = state;
    this.onState(state);
  }

  stop() {
    this.stopped = true;
    if (this.socket) this.socket.close(1000);
  }
}

/**
 * The user's rooms as /api/rooms/ has them (read whenever /ws/me/ (re)connects, so activity
 * during a disconnection is not missed), or null if the read failed.
 */
export async function readCounts() {
  const response = await fetch("/api/rooms/", { credentials: "same-origin" });
  return response.ok ? response.json() : null;
}
