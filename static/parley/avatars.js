// Who has an uploaded picture. The room page starts with its members' (page data; a member
// without one shows initials); anyone else it meets later (a member who joined after the page
// loaded, the author of an older message) is looked up once, in one request for all the names
// met in the same moment, and the picture replaces the initials on their messages shown already
// (and on their posts still being sent).
import { apiRequest } from "./api.js";
import { avatarOf } from "./render.js";

const LOOKUP_MAX = 50; // names per request (accounts/views.py AVATAR_LOOKUP_MAX)

export class Avatars {
  constructor({ known, lookupUrl, asked = [] }) {
    this.urls = new Map(Object.entries(known)); // name -> avatar URL
    this.asked = new Set([...asked, ...this.urls.keys()]); // names whose answer is known or coming
    this.lookupUrl = lookupUrl;
    this.waiting = new Set(); // names to ask about in the next request
  }

  /** ``name``'s avatar URL if known now (undefined: initials; looked up if never asked). */
  url(name) {
    if (name && !this.asked.has(name)) {
      this.asked.add(name);
      this.waiting.add(name);
      if (this.waiting.size === 1) queueMicrotask(() => this._lookUp());
    }
    return this.urls.get(name);
  }

  _lookUp() {
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (let i = 0; i < waiting.length; i += LOOKUP_MAX) this._ask(waiting.slice(i, i + LOOKUP_MAX));
  }

  async _ask(names) {
    const query = names.map((name) => `user=${encodeURIComponent(name)}`).join("&");
    try {
      const { avatars } = await apiRequest(`${this.lookupUrl}?${query}`);
      for (const [name, url] of Object.entries(avatars)) {
        this.urls.set(name, url);
        for (const item of document.querySelectorAll(`li.msg[data-author="${CSS.escape(name)}"]`)) {
          item.querySelector(".avatar")?.replaceWith(avatarOf(name, url));
        }
      }
    } catch (error) {
      for (const name of names) this.asked.delete(name); // asked again when next met
      console.warn("parley: avatars", error);
    }
  }
}
