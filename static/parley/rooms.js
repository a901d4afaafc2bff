// The room list: unread counts and the mentions badge follow activity live, through the
// user's own socket (/ws/me/); nothing is polled. Whenever the socket (re)connects, the counts
// are read once from /api/rooms/, so activity during a disconnection is not missed.
import { MeConnection } from "./me.js";

function badgeOf(slug) {
  return document.querySelector(`.room-row[data-slug="${CSS.escape(slug)}"] .badge.unread`);
}

function show(badge, unread) {
  badge.textContent = String(unread);
  badge.hidden = unread === 0;
}

async function refreshCounts() {
  const response = await fetch("/api/rooms/", { credentials: "same-origin" });
  if (!response.ok) return;
  for (const room of await response.json()) {
    const badge = badgeOf(room.slug);
    if (!badge || room.unread === null) continue;
    badge.dataset.lastRead = String(room.last_seq - room.unread);
    show(badge, room.unread);
  }
}

new MeConnection({
  onState(state) {
    document.documentElement.dataset.me = state; // for people's tools and the browser tests
    if (state === "live") refreshCounts();
  },
  onActivity({ room, seq }) {
    const badge = badgeOf(room);
    if (!badge || badge.dataset.lastRead === "") return; // not a member: no read position
    show(badge, Math.max(0, seq - Number(badge.dataset.lastRead)));
  },
  onMention() {
    const link = document.getElementById("mentions-link");
    let badge = link.nextElementSibling;
    if (!badge || !badge.classList.contains("badge")) {
      badge = document.createElement("span");
      badge.className = "badge";
      badge.title = "unread mentions";
      badge.textContent = "0";
      link.after(" ", badge);
    }
    badge.textContent = String(Number(badge.textContent) + 1);
  },
}).start();
