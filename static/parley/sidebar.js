// The sidebar of the app's pages: your rooms and direct messages with unread counts, kept live
// by your own socket (/ws/me/) and sorted by recent activity; the mentions badge; the tab
// title's unread count; the room switcher (Ctrl+K or Cmd+K); the drawer on a phone; and
// browser notifications for mentions and direct messages while the tab is hidden. It owns the
// page's one /ws/me/ socket and re-dispatches what it hears as document events for the page's
// own script (rooms.js): "parley:counts" (the rooms read after a (re)connect) and
// "parley:activity" ({room, seq}).
import { _, fmt } from "./i18n.js";
import { apiRequest } from "./api.js";
import { renderBody } from "./markdown.js";
import { MeConnection, readCounts } from "./me.js";

const sidebar = document.getElementById("sidebar");
const current = sidebar.querySelector(".side-room.current")?.dataset.slug || null;
const baseTitle = document.title;
let unseenHere = 0; // messages that arrived in this room while the tab was hidden

function rowOf(slug) {
  return sidebar.querySelector(`.side-room[data-slug="${CSS.escape(slug)}"]`);
}

function showCount(row, lastSeq) {
  const known = Math.max(lastSeq, Number(row.dataset.lastSeq || 0));
  row.dataset.lastSeq = String(known);
  const unread = row.dataset.slug === current ? 0 : Math.max(0, known - Number(row.dataset.lastRead));
  const badge = row.querySelector(".badge.unread");
  badge.textContent = String(unread);
  badge.hidden = unread === 0;
  row.classList.toggle("has-unread", unread > 0);
  showTitle();
}

function showTitle() {
  let total = unseenHere;
  for (const badge of sidebar.querySelectorAll(".side-room .badge.unread")) {
    if (!badge.hidden) total += Number(badge.textContent);
  }
  document.title = total ? `(${total}) ${baseTitle}` : baseTitle;
  document.documentElement.dataset.unreadTotal = String(total);
}

const PREVIEW_EVERY_MS = 500; // a busy room's preview: at most one fetch per half second
const previewDue = new Map(); // slug -> timer of the pending preview fetch

/** A body as one line of plain text: what the reader sees of it, without its Markdown marks. */
function plainText(body) {
  const fragment = renderBody(body);
  for (const block of fragment.querySelectorAll("p, li, pre, blockquote, br")) block.after(" ");
  return fragment.textContent.replace(/\s+/g, " ").trim();
}

function showPreview(row, message) {
  row.querySelector(".side-preview").textContent = message.deleted_at
    ? _("message deleted") : `${message.author}: ${plainText(message.body)}`;
}

// The server wrote each preview as typed; shown as it reads.
for (const preview of sidebar.querySelectorAll(".side-preview[data-body]")) {
  showPreview(preview.closest(".side-room"), { author: preview.dataset.author, body: preview.dataset.body });
}

/** Another room's newest message, for its preview (activity frames carry only its seq). */
function refreshPreview(row) {
  const slug = row.dataset.slug;
  if (previewDue.has(slug)) return;
  previewDue.set(slug, setTimeout(async () => {
    previewDue.delete(slug);
    try {
      const page = await apiRequest(
        `/api/rooms/${encodeURIComponent(slug)}/messages/?before_seq=${Number(row.dataset.lastSeq) + 1}&limit=1`);
      if (page.results.length) showPreview(row, page.results[0]);
    } catch (error) {
      console.warn(error);
    }
  }, PREVIEW_EVERY_MS));
}

/** Most recent activity first: a room with a new message moves to the top of its list. */
function moveToTop(row) {
  const listEl = row.parentElement;
  if (listEl.firstElementChild !== row) listEl.prepend(row);
}

async function refreshCounts() {
  const rooms = await readCounts();
  if (rooms === null) return;
  for (const room of rooms) {
    const row = rowOf(room.slug);
    if (!row || room.unread === null) continue;
    row.dataset.lastRead = String(room.last_seq - room.unread);
    showCount(row, room.last_seq);
  }
  document.dispatchEvent(new CustomEvent("parley:counts", { detail: rooms }));
}

// --- notifications ----------------------------------------------------------------------------

const notifyButton = document.getElementById("notify-toggle");
const NOTIFY_KEY = "parley-notify";

function notifying() {
  return "Notification" in window && Notification.permission === "granted"
    && localStorage.getItem(NOTIFY_KEY) === "on";
}

function showNotifyButton() {
  if (!notifyButton || !("Notification" in window)) return;
  notifyButton.hidden = false;
  notifyButton.setAttribute("aria-pressed", String(notifying()));
  notifyButton.textContent = notifying() ? _("Notifications on") : _("Notify me");
}

notifyButton?.addEventListener("click", async () => {
  if (notifying()) localStorage.setItem(NOTIFY_KEY, "off");
  else if ((await Notification.requestPermission()) === "granted") localStorage.setItem(NOTIFY_KEY, "on");
  showNotifyButton();
});
showNotifyButton();

// A sound for mentions and direct messages while the tab is hidden: off unless turned on.
const soundButton = document.getElementById("sound-toggle");
const SOUND_KEY = "parley-sound";
const soundOn = () => localStorage.getItem(SOUND_KEY) === "on";
soundButton?.setAttribute("aria-pressed", String(soundOn()));
soundButton?.addEventListener("click", () => {
  localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on");
  soundButton.setAttribute("aria-pressed", String(soundOn()));
});

function chime() {
  const audio = new AudioContext();
  const tone = audio.createOscillator();
  const gain = audio.createGain();
  tone.frequency.value = 880;
  gain.gain.setValueAtTime(0.15, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.3);
  tone.connect(gain).connect(audio.destination);
  tone.start();
  tone.stop(audio.currentTime + 0.3);
  tone.addEventListener("ended", () => audio.close());
}

function notify(title, body, url) {
  if (document.visibilityState === "visible") return;
  if (soundOn()) chime();
  if (!notifying()) return;
  const note = new Notification(title, { body, tag: url });
  note.addEventListener("click", () => { window.focus(); location.assign(url); });
}

// This room's page tells us its live messages (room.js): counted in the title while hidden.
document.addEventListener("parley:message", ({ detail: message }) => {
  if (document.visibilityState !== "visible") {
    unseenHere += 1;
    showTitle();
    if (rowOf(current)?.closest("#side-dms")) notify(message.author, message.body, location.pathname);
  }
  const row = rowOf(current);
  if (row) {
    moveToTop(row);
    showPreview(row, message);
  }
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") { unseenHere = 0; showTitle(); }
});
// Mentions read by reading the room (reading.js).
document.addEventListener("parley:mentions-read", ({ detail: count }) => {
  const badge = document.getElementById("mention-badge");
  const left = Math.max(0, Number(badge.textContent) - count);
  badge.textContent = String(left);
  badge.hidden = left === 0;
});

new MeConnection({
  onState: (state) => state === "live" && refreshCounts(),
  onActivity({ room, seq }) {
    document.dispatchEvent(new CustomEvent("parley:activity", { detail: { room, seq } }));
    const row = rowOf(room);
    if (!row) return;
    moveToTop(row);
    showCount(row, seq);
    if (room !== current) refreshPreview(row);
    if (room !== current && row.closest("#side-dms")) {
      notify(row.querySelector(".side-name").textContent, _("New direct message"), `/rooms/${room}/`);
    }
  },
  onMention(message) {
    const badge = document.getElementById("mention-badge");
    badge.textContent = String(Number(badge.textContent) + 1);
    badge.hidden = false;
    if (message) notify(fmt(_("%(author)s mentioned you"), { author: message.author }), message.body, `/rooms/${message.room}/?seq=${message.seq}`);
  },
}).start();
showTitle();

// --- drawer (phones) ---------------------------------------------------------------------------

const opener = document.getElementById("drawer-open");

function setDrawer(open) {
  document.body.classList.toggle("drawer-shown", open);
  opener?.setAttribute("aria-expanded", String(open));
  if (open) sidebar.querySelector("a, button")?.focus();
  else opener?.focus();
}

opener?.addEventListener("click", () => setDrawer(true));
document.getElementById("drawer-close").addEventListener("click", () => setDrawer(false));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.body.classList.contains("drawer-shown")) setDrawer(false);
});

// --- room switcher (Ctrl+K / Cmd+K) -----------------------------------------------------------

const switcher = document.getElementById("switcher");
const search = document.getElementById("switcher-input");
const results = document.getElementById("switcher-results");

function filterRooms() {
  const needle = search.value.trim().toLowerCase();
  const items = [];
  for (const row of sidebar.querySelectorAll(".side-room")) {
    const name = row.querySelector(".side-name").textContent.trim();
    if (needle && !name.toLowerCase().includes(needle) && !row.dataset.slug.includes(needle)) continue;
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = row.querySelector("a").getAttribute("href");
    link.textContent = name;
    item.append(link);
    items.push(item);
  }
  results.replaceChildren(...items);
}

function openSwitcher() {
  search.value = "";
  filterRooms();
  switcher.showModal();
  search.focus();
}

document.getElementById("switcher-open").addEventListener("click", openSwitcher);
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
    event.preventDefault();
    openSwitcher();
  }
});
search.addEventListener("input", filterRooms);
search.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    const first = results.querySelector("a");
    if (first) location.assign(first.href);
  } else if (event.key === "ArrowDown") {
    event.preventDefault();
    results.querySelector("a")?.focus();
  }
});
