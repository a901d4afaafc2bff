// How a message looks, wherever it is shown: author and avatar (once per group of consecutive
// messages by one author), local time (full date on hover), the body (markdown.js: a safe
// Markdown subset and links, sanitized), the "edited" mark, a quiet tombstone once deleted.
import { _ } from "./i18n.js";
import { renderBody } from "./markdown.js";

const GROUP_GAP_MS = 5 * 60 * 1000; // a message within 5 minutes of the last joins its group

/** A stable colour for a user: their initials' background (white text stays AA-readable). */
export function hueOf(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 360;
}

/** The avatar of ``name``: their uploaded picture at ``url``, else initials on their colour. */
export function avatarOf(name, url) {
  if (url) {
    const img = document.createElement("img"); // the server's re-encoded PNG, same origin
    img.className = "avatar";
    img.alt = "";
    img.src = url;
    return img;
  }
  const el = document.createElement("span");
  el.className = "avatar";
  el.setAttribute("aria-hidden", "true");
  el.textContent = (name.match(/[\p{L}\p{N}]/gu) || ["?"]).slice(0, 2).join("").toUpperCase();
  el.style.setProperty("--hue", hueOf(name));
  return el;
}

export function timeOf(iso) {
  const when = new Date(iso);
  const el = document.createElement("time");
  el.dateTime = iso;
  el.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  el.title = when.toLocaleString([], { dateStyle: "full", timeStyle: "medium" });
  return el;
}

export function dayOf(iso) {
  const day = new Date(iso);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (day.toDateString() === today.toDateString()) return _("Today");
  if (day.toDateString() === yesterday.toDateString()) return _("Yesterday");
  return day.toLocaleDateString([], {
    weekday: "long", year: "numeric", month: "long", day: "numeric",
  });
}

/**
 * Fill ``item`` (an <li>) with ``message``. ``mine`` and ``mentionsMe`` are the viewer's
 * checks, ``avatarUrl`` the author's uploaded picture (else initials); data-author and data-at
 * let the list group items and place date separators.
 */
export function renderMessage(item, message, { mine, mentioned, avatarUrl }) {
  const head = document.createElement("div");
  head.className = "msg-head";
  const who = document.createElement("b");
  who.className = "author";
  who.textContent = message.author;
  head.append(who);
  if (message.created_at) head.append(timeOf(message.created_at));
  const body = document.createElement("div");
  body.className = "body";
  if (message.deleted_at) body.textContent = _("message deleted");
  else body.append(renderBody(message.body));
  item.replaceChildren(avatarOf(message.author, avatarUrl), head, body);
  if (message.edited_at && !message.deleted_at) {
    const note = document.createElement("small");
    note.className = "edited";
    note.textContent = _("(edited)");
    note.title = new Date(message.edited_at).toLocaleString();
    const last = body.lastElementChild; // on the message's last line, not below it
    (last && last.tagName === "P" ? last : body).append(" ", note);
  }
  if (message.seq !== undefined) item.dataset.seq = message.seq;
  item.dataset.author = message.author;
  if (message.created_at) item.dataset.at = message.created_at;
  item.classList.add("msg");
  item.classList.toggle("deleted", Boolean(message.deleted_at));
  item.classList.toggle("mine", mine);
  item.classList.toggle("mention", !message.deleted_at && mentioned);
}

/**
 * Group ``item`` with the message before it (same author within a few minutes, same day) and
 * mark the first message of each day with its date (shown as a separator by the stylesheet).
 */
export function regroup(item) {
  if (!item || !item.dataset.at) return;
  const prev = item.previousElementSibling;
  const at = new Date(item.dataset.at);
  const day = dayOf(item.dataset.at);
  const prevDay = prev?.dataset.at ? dayOf(prev.dataset.at) : null;
  const newDay = day !== prevDay;
  item.classList.toggle("day-start", newDay);
  if (newDay) item.dataset.day = day;
  else delete item.dataset.day;
  const joined = !newDay && prev?.dataset.author === item.dataset.author
    && !prev.classList.contains("deleted") && !item.classList.contains("first-unread")
    && at - new Date(prev.dataset.at) < GROUP_GAP_MS;
  item.classList.toggle("cont", joined);
}
