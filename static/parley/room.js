// The room page: live messages through RoomConnection (client.js), older history from the REST
// API on scrolling up, pending/sent state of your own posts, the connection banner, and the
// read position. Message bodies are always text (textContent), never HTML.

import { RoomConnection } from "./client.js";

const data = JSON.parse(document.getElementById("room-data").textContent);
const list = document.getElementById("messages"); // saved messages, in seq order
const outbox = document.getElementById("outbox"); // your posts not yet acknowledged
const scroller = document.getElementById("scroller");
const older = document.getElementById("older");
const stateLine = document.getElementById("state");
const banner = document.getElementById("banner");
const form = document.getElementById("send");
const input = document.getElementById("body");

const PAGE_SIZE = 50;
const NEAR_TOP_PX = 150; // scrolling this close to the top loads older messages
const NEAR_BOTTOM_PX = 80; // a reader this close to the bottom follows new messages
const READ_DELAY_MS = 1000; // at most one read-position update per second

// --- rendering ------------------------------------------------------------------------------

// The server's mention rule (chat/mentions.py): "@name" not preceded by a word character.
const MENTION = /(?<![\p{L}\p{N}_@.+-])@([\p{L}\p{N}_.+-]+)/gu;

function mentionsMe(body) {
  for (const match of body.matchAll(MENTION)) {
    if (match[1].replace(/\.+$/, "") === data.me) return true;
  }
  return false;
}

function render(item, message) {
  const who = document.createElement("b");
  who.className = "author";
  who.textContent = message.author + ": ";
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = message.deleted_at ? "(message deleted)" : message.body;
  item.replaceChildren(who, body);
  if (message.edited_at && !message.deleted_at) {
    const note = document.createElement("small");
    note.textContent = " (edited)";
    item.append(note);
  }
  if (message.seq !== undefined) item.dataset.seq = message.seq;
  if (message.created_at) item.title = new Date(message.created_at).toLocaleString();
  item.classList.toggle("deleted", Boolean(message.deleted_at));
  item.classList.toggle("mine", message.author === data.me);
  item.classList.toggle("mention", !message.deleted_at && mentionsMe(message.body || ""));
}

function itemFor(seq) {
  return list.querySelector(`li[data-seq="${seq}"]`);
}

/** Put a rendered item in seq order (new ones almost always belong at the end). */
function place(item, seq) {
  let next = null;
  for (let el = list.lastElementChild; el && Number(el.dataset.seq) > seq; el = el.previousElementSibling) {
    next = el;
  }
  list.insertBefore(item, next);
}

function upsert(message) {
  let item = itemFor(message.seq);
  if (item) {
    render(item, message);
  } else {
    item = document.createElement("li");
    render(item, message);
    place(item, message.seq);
  }
  return item;
}

function nearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

function followingBottom(change, force = false) {
  const follow = force || nearBottom();
  change();
  if (follow) scroller.scrollTop = scroller.scrollHeight;
}

function newestShown() {
  const last = list.lastElementChild;
  return last ? Number(last.dataset.seq) : 0;
}

// --- older history --------------------------------------------------------------------------

// The socket replays everything after historyFrom; anything older comes from the REST API.
let oldest = data.historyFrom + 1;
let loadingOlder = false;

function showOlderState(error = false) {
  older.dataset.state = error ? "error" : oldest <= 1 ? "end" : loadingOlder ? "loading" : "idle";
}

async function loadOlder() {
  if (loadingOlder || oldest <= 1) return;
  loadingOlder = true;
  showOlderState();
  let failed = false;
  try {
    const url = `${data.messagesUrl}?before_seq=${oldest}&limit=${PAGE_SIZE}`;
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`older messages: HTTP ${response.status}`);
    const page = await response.json();
    const fragment = document.createDocumentFragment();
    for (const message of page.results) {
      if (message.seq >= oldest || itemFor(message.seq)) continue;
      const item = document.createElement("li");
      render(item, message);
      fragment.append(item);
    }
    // Keep what the reader sees in place: the new items push everything down by their height.
    const height = scroller.scrollHeight;
    const top = scroller.scrollTop;
    list.insertBefore(fragment, list.firstElementChild);
    scroller.scrollTop = top + (scroller.scrollHeight - height);
    oldest = page.prev_before_seq === null || !page.results.length ? 1 : page.results[0].seq;
  } catch (error) {
    failed = true;
    console.warn(error);
  } finally {
    loadingOlder = false;
    showOlderState(failed);
  }
  // Still at the top (a short page, or nothing to scroll yet): fetch on.
  if (!failed && scroller.scrollTop < NEAR_TOP_PX) loadOlder();
}

// Not while the socket replays the recent history: the page is still filling from the bottom.
let replayed = false;
scroller.addEventListener("scroll", () => {
  if (replayed && scroller.scrollTop < NEAR_TOP_PX) loadOlder();
}, { passive: true });
document.getElementById("load-older").addEventListener("click", () => loadOlder());
showOlderState();

// --- read position --------------------------------------------------------------------------

let readSent = data.lastReadSeq; // the server's read position when the page opened
let readTimer = null;

function scheduleRead() {
  if (!data.isMember || readTimer !== null) return;
  readTimer = setTimeout(sendRead, READ_DELAY_MS);
}

async function sendRead() {
  readTimer = null;
  if (document.visibilityState !== "visible") return; // visibilitychange schedules it again
  const seq = newestShown();
  if (seq <= readSent) return;
  const previous = readSent;
  readSent = seq;
  try {
    const response = await fetch(data.readUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": data.csrfToken },
      body: JSON.stringify({ seq }),
    });
    if (!response.ok) throw new Error(`mark read: HTTP ${response.status}`);
  } catch (error) {
    readSent = previous;
    console.warn(error);
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") scheduleRead();
});

// --- connection -----------------------------------------------------------------------------

function showState(value) {
  stateLine.dataset.state = value;
  stateLine.textContent = value;
  const down = value === "offline" || value === "reconnecting";
  banner.dataset.state = value;
  banner.textContent = value === "refused"
    ? "You can no longer read this room."
    : "Connection lost. Reconnecting…";
  banner.hidden = !(down || value === "refused");
}

function acknowledged(frame) {
  const pending = frame.client_id
    ? outbox.querySelector(`li[data-client-id="${frame.client_id}"]`)
    : null;
  const message = frame.message;
  followingBottom(() => {
    let item = itemFor(message.seq);
    if (item) {
      pending?.remove(); // the live frame came first
      if (frame.client_id) item.dataset.clientId = frame.client_id;
      render(item, message);
    } else {
      item = pending || document.createElement("li");
      render(item, message);
      place(item, message.seq);
    }
    item.dataset.status = "sent";
  });
  scheduleRead();
}

function refused(frame) {
  const pending = frame.client_id
    ? outbox.querySelector(`li[data-client-id="${frame.client_id}"]`)
    : null;
  if (!pending) {
    if (frame.detail) console.warn("parley:", frame.code, frame.detail);
    return;
  }
  pending.dataset.status = "failed";
  const reason = document.createElement("small");
  reason.className = "reason";
  reason.textContent = ` (not sent: ${frame.detail})`;
  pending.append(reason);
}

const conn = new RoomConnection({
  slug: data.slug,
  afterSeq: data.historyFrom,
  onMessage(message) {
    followingBottom(() => upsert(message));
    scheduleRead();
  },
  onChange(type, message) {
    if (itemFor(message.seq)) upsert(message); // older ones are fetched as they now are
  },
  onAck: acknowledged,
  onError: refused,
  presence: true,
  onPresence(users) {
    document.getElementById("online-list").textContent = users.join(", ") || "nobody";
    for (const item of document.querySelectorAll("#member-list li[data-username]")) {
      item.classList.toggle("is-online", users.includes(item.dataset.username));
    }
  },
  onTyping: showTyping,
  onState(value) {
    showState(value);
    if (value === "live") {
      if (!replayed) {
        replayed = true;
        // The recent history does not fill the screen (or barely): fetch older messages.
        if (scroller.scrollTop < NEAR_TOP_PX) loadOlder();
      }
      scheduleRead();
    }
  },
});
conn.start();
window.parleyRoom = conn; // for the console and the browser tests

// --- typing --------------------------------------------------------------------------------

const typingLine = document.getElementById("typing");
const typists = new Map(); // username -> timer that forgets them
const TYPING_SHOWN_MS = 4000;

function showTyping(username) {
  clearTimeout(typists.get(username));
  typists.set(username, setTimeout(() => { typists.delete(username); renderTyping(); },
                                   TYPING_SHOWN_MS));
  renderTyping();
}

function renderTyping() {
  const names = [...typists.keys()];
  typingLine.textContent = names.length === 0 ? ""
    : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

// --- sending --------------------------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim()) return;
  const clientId = conn.send(text);
  const item = document.createElement("li");
  item.dataset.clientId = clientId;
  item.dataset.status = "pending";
  render(item, { author: data.me, body: text });
  followingBottom(() => outbox.append(item), true);
  input.value = "";
});

input.addEventListener("input", () => conn.typing()); // the server throttles it

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});
