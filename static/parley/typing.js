// The typing line of the room page: who is typing now. A name shows for a few seconds after
// each typing frame (the server forwards them at most every 2 s) and goes as soon as that
// person's message arrives.
import { fmt, ngettext } from "./i18n.js";

const TYPING_SHOWN_MS = 4000;

export class TypingLine {
  constructor(element) {
    this.element = element;
    this.typists = new Map(); // username -> timer that forgets them
  }

  /** ``username`` is typing (again): shown for a few more seconds. */
  show(username) {
    clearTimeout(this.typists.get(username));
    this.typists.set(username, setTimeout(() => this.forget(username), TYPING_SHOWN_MS));
    this._render();
  }

  /** Their message arrived (or they stopped): they are no longer typing. */
  forget(username) {
    if (!this.typists.has(username)) return;
    clearTimeout(this.typists.get(username));
    this.typists.delete(username);
    this._render();
  }

  _render() {
    const names = [...this.typists.keys()];
    this.element.textContent = names.length === 0 ? ""
      : fmt(ngettext("%(names)s is typing…", "%(names)s are typing…", names.length),
        { names: names.join(", ") });
  }
}
