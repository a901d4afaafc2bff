// The room list: unread counts follow activity live, through the user's own socket (/ws/me/,
// opened by sidebar.js); nothing is polled. Whenever the socket (re)connects, the counts are
// read once from /api/rooms/, so activity during a disconnection is not missed.

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

// The sidebar (sidebar.js) owns the page's /ws/me/ socket and passes on what it hears.
document.addEventListener("parley:counts", ({ detail: rooms }) => {
  for (const room of rooms) {
    const badge = badgeOf(room.slug);
    if (!badge || room.unread === null) continue;
    badge.dataset.lastRead = String(room.last_seq - room.unread);
    show(badge, room.last_seq);
  }
  const root = document.documentElement; // how many reads were applied, for tools and tests
  root.dataset.countsRead = String(Number(root.dataset.countsRead || 0) + 1);
});

document.addEventListener("parley:activity", ({ detail: { room, seq } }) => {
  const badge = badgeOf(room);
  if (!badge || badge.dataset.lastRead === "") return; // not a member: no read position
  show(badge, seq);
});
