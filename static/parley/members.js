// The room page's heading and member list, kept live: who is online (presence frames), who
// joined or left (member.joined, member.left) and the room's title and privacy (room.updated).
// Room events reach it through client.js's onRoomEvent, counted like edits (change numbers):
// live, replayed after a reconnect, each once. A new member's entry is made from the page's
// <template id="member-template"> (its buttons and their words come from the server).

import { _, fmt, ngettext } from "./i18n.js";

export class RoomHeading {
  constructor(data) {
    this.data = data;
    this.list = document.getElementById("member-list");
    this.template = document.getElementById("member-template");
    this.online = [];
  }

  /** Who is online in the room (a presence frame's usernames). */
  showOnline(users) {
    this.online = users;
    document.getElementById("online-list").textContent = users.join(", ") || _("nobody");
    for (const item of this.list.querySelectorAll("li[data-username]")) {
      item.classList.toggle("is-online", users.includes(item.dataset.username));
    }
  }

  /** A room event frame. */
  apply(frame) {
    if (frame.type === "member.joined") this._add(frame.member.user, frame.member.role);
    else if (frame.type === "member.left") this._left(frame.member.user, frame.reason);
    else if (frame.type === "room.updated") this._retitle(frame);
  }

  _item(username) {
    return [...this.list.querySelectorAll("li[data-username]")]
      .find((item) => item.dataset.username === username);
  }

  _add(username, role) {
    this._item(username)?.remove(); // a role that changed: made again
    const item = this.template.content.firstElementChild.cloneNode(true);
    item.dataset.username = username;
    item.querySelector(".member-name").textContent = username;
    const roleTag = item.querySelector(".role");
    if (role === "member") roleTag.remove();
    else roleTag.textContent = role;
    for (const input of item.querySelectorAll("input[name='username']")) input.value = username;
    const remove = item.querySelector(".remove-member");
    if (remove) remove.setAttribute("aria-label", fmt(remove.dataset.label, { name: username }));
    if (username === this.data.me) item.querySelector(".dm-form")?.remove();
    if (username === this.data.me || role === "owner") item.querySelector(".remove-form")?.remove();
    item.classList.toggle("is-online", this.online.includes(username));
    this.list.append(item);
    this._count();
  }

  _left(username, reason) {
    if (reason === "account_deleted") {
      // The event names the deleted-user placeholder, never the old name: ask who is left.
      this._reload();
      return;
    }
    this._item(username)?.remove();
    this._count();
  }

  async _reload() {
    try {
      const response = await fetch(`/api/rooms/${encodeURIComponent(this.data.slug)}/members/`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(`members: HTTP ${response.status}`);
      const members = new Set((await response.json()).map((m) => m.user));
      for (const item of this.list.querySelectorAll("li[data-username]")) {
        if (!members.has(item.dataset.username)) item.remove();
      }
      this._count();
    } catch (error) {
      console.warn(error);
    }
  }

  _count() {
    const n = this.list.querySelectorAll("li[data-username]").length;
    document.getElementById("member-count").textContent =
      fmt(ngettext("%(n)s member", "%(n)s members", n), { n });
    document.querySelector("#members summary").textContent = fmt(_("Members (%(n)s)"), { n });
  }

  _retitle(room) { // room.updated: {slug, title, is_private}
    const heading = document.querySelector(".room-title");
    heading.textContent = room.title;
    document.title = `${room.title} · Parley`;
    const input = document.getElementById("body");
    if (input.dataset.placeholder) {
      input.placeholder = fmt(input.dataset.placeholder, { title: room.title });
    }
    const tag = document.getElementById("room-tag");
    if (tag && tag.dataset.public) {
      tag.textContent = room.is_private ? tag.dataset.private : tag.dataset.public;
    }
  }
}
