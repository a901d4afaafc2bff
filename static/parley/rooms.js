// The room list: unread counts and the mentions badge follow activity live, through the
// user's own socket (/ws/me/); nothing is polled. Whenever the socket (re)connects, the counts
// are read once from /api/rooms/, so activity during a disconnection is not missed.
import { MeConnection, readCounts } from "./me.js";

function badgeOf(slug) {
  return document.querySelector(`.room-row[data-slug="${CSS.escape(slug)}"] .badge.unread`);
}

// A badge keeps the room's newest seq it has heard of (data-last-seq) and the user's read
// position (data-last-read). Activity frames and the /api/rooms/ read after a (re)connect can
// arrive in either order, so the newest seq wins: a response read before a message was posted
// never lowers a count that the message's activity frame has already raised.
function show(badge, lastSeq) {
  const known = Math.max(lastSeq, Number(badge.dataset.lastSeq || 0));
  badge.dataset.lastSeq = String(known);
  const unread = Math.max(0, known - Number(badge.dataset.lastRead));
  badge.textContent = String(unread);
  badge.hidden = unread === 0;
}

async function refreshCounts() {
  const read = await readCounts(badgeOf, (badge, room) => {
    badge.dataset.lastRead = String(room.last_seq - room.unread);
    show(badge, room.last_seq);
  });
  if (!read) return;
  const root = document.documentElement; // how many reads were applied, for tools and tests
  root.dataset.countsRead = String(Number(root.dataset.countsRead || 0) + 1);
}

new MeConnection({
  onState: (state) => state === "live" && refreshCounts(),
  onActivity({ room, seq }) {
    const badge = badgeOf(room);
    if (!badge || badge.dataset.lastRead === "") return; // not a member: no read position
    show(badge, seq);
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
