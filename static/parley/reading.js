// The reader's position in a room: moved as messages are actually on the screen (at most once a
// second), and once more when the page is hidden or left (a keepalive request outlives it).
// Mentions of the reader among the messages seen are marked read too (/api/mentions/).

import { apiRequest } from "./api.js";

const READ_DELAY_MS = 1000;

function post(url, csrfToken, payload, keepalive = false) {
  return apiRequest(url, { method: "POST", csrfToken, payload, keepalive });
}

export class ReadMark {
  /** ``ready()`` says whether the room has opened where it should (before, nothing is read). */
  constructor({ data, list, scroller, ready }) {
    Object.assign(this, { data, list, scroller, ready });
    this.sent = data.lastReadSeq; // the server's read position when the page opened
    this.timer = null;
    const leave = () => { if (this.active()) this.send({ leaving: true }); };
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.schedule();
      else leave();
    });
    window.addEventListener("pagehide", leave);
  }

  active() {
    return this.data.isMember && this.ready();
  }

  /** The newest message the reader has seen: its bottom edge is inside the visible list. */
  newestSeen() {
    const bottom = this.scroller.getBoundingClientRect().bottom + 2;
    for (let el = this.list.lastElementChild; el; el = el.previousElementSibling) {
      if (el.getBoundingClientRect().bottom <= bottom) return Number(el.dataset.seq);
    }
    return 0;
  }

  schedule() {
    if (!this.active() || this.timer !== null) return;
    this.timer = setTimeout(() => this.send(), READ_DELAY_MS);
  }

  async send({ leaving = false } = {}) {
    clearTimeout(this.timer);
    this.timer = null;
    if (document.visibilityState !== "visible" && !leaving) return; // visibilitychange reschedules
    const seq = this.newestSeen();
    if (seq <= this.sent) return;
    const previous = this.sent;
    this.sent = seq;
    try {
      await post(this.data.readUrl, this.data.csrfToken, { seq }, leaving);
    } catch (error) {
      this.sent = previous;
      console.warn(error);
      return;
    }
    if (this._mentionsBetween(previous, seq)) this._markMentions(seq, leaving);
  }

  _mentionsBetween(after, upTo) {
    return [...this.list.querySelectorAll("li.mention")].some((el) => {
      const seq = Number(el.dataset.seq);
      return seq > after && seq <= upTo;
    });
  }

  /** Mark read the reader's unread mentions in this room up to ``seq``. */
  async _markMentions(seq, keepalive) {
    try {
      const unread = await apiRequest("/api/mentions/?unread=1");
      const seen = unread.filter(
        (m) => m.message.room === this.data.slug && m.message.seq <= seq);
      await Promise.all(seen.map((m) => post(`/api/mentions/${m.id}/read/`, this.data.csrfToken,
                                             undefined, keepalive)));
      if (seen.length) {
        document.dispatchEvent(new CustomEvent("parley:mentions-read", { detail: seen.length }));
      }
    } catch (error) {
      console.warn(error);
    }
  }
}
