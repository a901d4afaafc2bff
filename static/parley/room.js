// The room page: live messages through RoomConnection (client.js), older history from the REST
// API on scrolling up, your posts ("sending…", then nothing; a refusal says why, with Retry),
// the connection banner, where the room opens (first unread or ?seq=N), and the read position
// as messages are actually seen. Message bodies are always text, never HTML (render.js).

import { _, fmt } from "./i18n.js";
import { Avatars } from "./avatars.js";
import { RoomConnection } from "./client.js";
import { RoomHeading } from "./members.js";
import { MessageActions, toolsFor } from "./msgactions.js";
import { ReadMark } from "./reading.js";
import { refusalText } from "./refusals.js";
import { regroup, renderMessage } from "./render.js";
import { TypingLine } from "./typing.js";

const data = JSON.parse(document.getElementById("room-data").textContent);
const list = document.getElementById("messages"); // saved messages, in seq order
const outbox = document.getElementById("outbox"); // your posts not yet acknowledged
const scroller = document.getElementById("scroller");
const older = document.getElementById("older");
const stateLine = document.getElementById("state");
const banner = document.getElementById("banner");
const form = document.getElementById("send");
const input = document.getElementById("body");
const jump = document.getElementById("jump-latest");
const liveRegion = document.getElementById("live-region");

const PAGE_SIZE = 50;
const NEAR_TOP_PX = 150; // scrolling this close to the top loads older messages
const NEAR_BOTTOM_PX = 80; // a reader this close to the bottom follows new messages
const DRAFT_KEY = `parley-draft:${data.slug}`;

// --- rendering ------------------------------------------------------------------------------

// The server's mention rule (chat/mentions.py): "@name" not preceded by a word character.
const MENTION = /(?<![\p{L}\p{N}_@.+-])@([\p{L}\p{N}_.+-]+)/gu;

function mentionsMe(body) {
  for (const match of body.matchAll(MENTION)) {
    if (match[1].replace(/\.+$/, "") === data.me) return true;
  }
  return false;
}

const actions = new MessageActions({ list, data, paint, onStatus: say });

// The members' pictures came with the page; anyone else's is looked up when first met.
const avatars = new Avatars({
  known: data.avatars,
  lookupUrl: data.avatarsUrl,
  asked: [...document.querySelectorAll("#member-list li[data-username]")].map((li) => li.dataset.username),
});

function paint(item, message) {
  actions.remember(message);
  if (item.classList.contains("editing")) return; // the saved edit repaints it
  renderMessage(item, message, {
    mine: message.author === data.me,
    mentioned: mentionsMe(message.body || ""),
    avatarUrl: avatars.url(message.author),
  });
  if (message.seq !== undefined) item.append(toolsFor(message, data));
  if (message.seq === data.firstUnread) {
    item.classList.add("first-unread"); // the "New messages" divider (the stylesheet draws it)
    item.dataset.divider = list.dataset.newLabel;
  }
  if (message.seq === data.highlightSeq) item.classList.add("highlight");
}

function say(text) {
  liveRegion.textContent = text;
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
  regroup(item);
  regroup(item.nextElementSibling);
}

function upsert(message) {
  let item = itemFor(message.seq);
  if (item) {
    paint(item, message);
    regroup(item);
    regroup(item.nextElementSibling);
  } else {
    item = document.createElement("li");
    paint(item, message);
    place(item, message.seq);
  }
  return item;
}

function nearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

// Until the room is live, the page does not follow the bottom when it opens at an older message.
let anchored = !(data.firstUnread || data.highlightSeq);

function followingBottom(change, force = false) {
  const follow = force || (anchored && nearBottom());
  change();
  if (follow) scroller.scrollTop = scroller.scrollHeight;
  showJump();
}

function showJump() {
  jump.hidden = nearBottom();
}

jump.addEventListener("click", () => {
  scroller.scrollTop = scroller.scrollHeight;
  showJump();
  input.focus();
});

/** Open the room at the highlighted message, or at the first unread one (with its divider). */
function anchor() {
  const target = itemFor(data.highlightSeq) || itemFor(data.firstUnread)
    || (data.firstUnread ? list.firstElementChild : null);
  if (target) {
    target.scrollIntoView({ block: data.highlightSeq ? "center" : "start" });
    if (!data.highlightSeq) scroller.scrollTop -= 40; // show the divider above it
  } else {
    scroller.scrollTop = scroller.scrollHeight;
  }
  anchored = true;
  showJump();
}

// A linked message older than the socket's replay: fetch older pages until it is there.
async function reachHighlight() {
  while (!itemFor(data.highlightSeq) && oldest > 1) {
    const before = oldest;
    await loadOlder();
    if (oldest === before) break; // failed: open where we are
  }
  anchor();
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
      paint(item, message);
      fragment.append(item);
    }
    // Keep what the reader sees in place: the message that was first stays where it was on
    // the screen (it may lose its date or its name by joining the group above it).
    const first = list.firstElementChild;
    const before = first?.getBoundingClientRect().top;
    list.insertBefore(fragment, first);
    for (let el = list.firstElementChild; el && el !== first; el = el.nextElementSibling) regroup(el);
    regroup(first);
    if (first) scroller.scrollTop += first.getBoundingClientRect().top - before;
    oldest = page.prev_before_seq === null || !page.results.length ? 1 : page.results[0].seq;
  } catch (error) {
    failed = true;
    console.warn(error);
  } finally {
    loadingOlder = false;
    showOlderState(failed);
  }
  // Still at the top (a short page, or nothing to scroll yet): fetch on (not while the page
  // looks for a linked message: reachHighlight pages on until it has it).
  if (!failed && anchored && scroller.scrollTop < NEAR_TOP_PX) await loadOlder();
}

// Not while the socket replays the recent history: the page is still filling from the bottom.
let replayed = false;
scroller.addEventListener("scroll", () => {
  if (replayed && scroller.scrollTop < NEAR_TOP_PX) loadOlder();
  showJump();
  scheduleRead();
}, { passive: true });
document.getElementById("load-older").addEventListener("click", () => loadOlder());
showOlderState();

// --- read position (reading.js) -------------------------------------------------------------

const reader = new ReadMark({ data, list, scroller, ready: () => anchored });
const scheduleRead = () => reader.schedule();

// --- connection -----------------------------------------------------------------------------

const LABELS = { connecting: _("connecting…"), reconnecting: _("reconnecting…"), offline: _("offline"),
                 live: _("live"), refused: _("refused"), closed: _("closed") };

function showState(value) {
  stateLine.dataset.state = value;
  stateLine.textContent = LABELS[value] || value;
  const down = value === "offline" || value === "reconnecting";
  banner.dataset.state = value;
  banner.textContent = value === "refused"
    ? _("You can no longer read this room.")
    : _("Connection lost. Reconnecting…");
  banner.hidden = !(down || value === "refused");
  // Who is online is what the server last said: stale while the connection is down.
  document.getElementById("online").classList.toggle("stale", value !== "live");
}

function pendingFor(frame) {
  return frame.client_id ? outbox.querySelector(`li[data-client-id="${frame.client_id}"]`) : null;
}

function acknowledged(frame) {
  const pending = pendingFor(frame);
  const message = frame.message;
  followingBottom(() => {
    let item = itemFor(message.seq);
    if (item) {
      pending?.remove(); // the live frame came first
      if (frame.client_id) item.dataset.clientId = frame.client_id;
      paint(item, message);
    } else {
      item = pending || document.createElement("li");
      paint(item, message);
      place(item, message.seq);
    }
    item.dataset.status = "sent";
  });
  scheduleRead();
}

function refused(frame) {
  const pending = pendingFor(frame);
  if (!pending) {
    if (frame.detail) console.warn("parley:", frame.code, frame.detail);
    return;
  }
  pending.dataset.status = "failed";
  const reason = document.createElement("p");
  reason.className = "reason";
  reason.setAttribute("role", "alert");
  reason.textContent = fmt(_("Not sent: %(detail)s"), { detail: refusalText(frame.detail, data.refusals) });
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "btn retry";
  retry.textContent = _("Retry");
  retry.addEventListener("click", () => { pending.remove(); post(pending.dataset.text); });
  const discard = document.createElement("button");
  discard.type = "button";
  discard.className = "btn-quiet discard";
  discard.textContent = _("Discard");
  discard.addEventListener("click", () => { pending.remove(); input.focus(); });
  reason.append(" ", retry, " ", discard);
  pending.append(reason);
}

function announce(message) {
  if (conn.syncing || message.author === data.me) return; // history is not read out
  say(`${message.author}: ${message.deleted_at ? _("message deleted") : message.body}`);
  document.dispatchEvent(new CustomEvent("parley:message", { detail: message }));
}

const typing = new TypingLine(document.getElementById("typing"));

const heading = new RoomHeading(data); // the member list, who is online, the title
const conn = new RoomConnection({
  slug: data.slug,
  afterSeq: data.historyFrom,
  onMessage(message) {
    typing.forget(message.author);
    followingBottom(() => upsert(message));
    announce(message);
    scheduleRead();
  },
  onChange(type, message) {
    if (itemFor(message.seq)) upsert(message); // older ones are fetched as they now are
  },
  onAck: acknowledged,
  onError: refused,
  onRoomEvent: (frame) => heading.apply(frame),
  presence: true,
  onPresence(users) {
    heading.showOnline(users);
    for (const name of users) avatars.url(name); // someone new: their picture before their post
  },
  onTyping: (username) => typing.show(username),
  onState(value) {
    showState(value);
    if (value === "live") {
      if (!replayed) {
        replayed = true;
        if (data.highlightSeq && data.highlightSeq < oldest) {
          reachHighlight();
        } else {
          if (!anchored) anchor();
          // The recent history does not fill the screen (or barely): fetch older messages.
          if (scroller.scrollTop < NEAR_TOP_PX) loadOlder();
        }
      }
      scheduleRead();
    }
  },
});
conn.start();
window.parleyRoom = conn; // for the console and the browser tests

// --- sending --------------------------------------------------------------------------------

function post(text) {
  const clientId = conn.send(text);
  const item = document.createElement("li");
  item.dataset.clientId = clientId;
  item.dataset.status = "pending";
  item.dataset.text = text;
  renderMessage(item, { author: data.me, body: text, created_at: new Date().toISOString() },
                { mine: true, mentioned: false, avatarUrl: avatars.url(data.me) });
  const sending = document.createElement("small"); // until acknowledged (then repainted)
  sending.className = "sending";
  sending.textContent = _("sending…");
  const last = item.querySelector(".body").lastElementChild; // on the last line, as "(edited)"
  (last?.tagName === "P" ? last : item.querySelector(".body")).append(" ", sending);
  followingBottom(() => outbox.append(item), true);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim()) return;
  post(text);
  input.value = "";
  localStorage.removeItem(DRAFT_KEY);
  fitInput();
});

// A draft is kept per room across reloads.
input.value = localStorage.getItem(DRAFT_KEY) || "";

function fitInput() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, 200)}px`;
}
fitInput();

input.addEventListener("input", () => {
  conn.typing(); // the server throttles it
  if (input.value) localStorage.setItem(DRAFT_KEY, input.value);
  else localStorage.removeItem(DRAFT_KEY);
  fitInput();
});

// On a desktop Enter sends and Shift+Enter adds a line; on a touch screen the keyboard's
// return adds a line and the button sends. Up in an empty composer edits your last message.
const touchOnly = matchMedia("(hover: none) and (pointer: coarse)");
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !touchOnly.matches) {
    event.preventDefault();
    form.requestSubmit();
  } else if (event.key === "ArrowUp" && input.value === "") {
    const seq = actions.lastOwn();
    if (seq !== null) {
      event.preventDefault();
      actions.edit(seq);
    }
  }
});
