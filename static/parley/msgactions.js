// Actions on a message: edit in place (yours), delete after a confirmation (yours; the room's
// owner and moderators and staff: anyone's), copy a link to it (/rooms/<slug>/?seq=N). On a
// desktop the toolbar shows on hover and on keyboard focus; on a phone a long press opens it.
// Every change goes through the REST API; the live frames then update every open page.
import { _, fmt } from "./i18n.js";
import { apiRequest } from "./api.js";
import { refusalText } from "./refusals.js";

/** The toolbar of one message, for what this viewer may do with it. */
export function toolsFor(message, { me, canModerate, slug }) {
  const tools = document.createElement("div");
  tools.className = "msg-tools";
  tools.setAttribute("role", "group");
  tools.setAttribute("aria-label", _("Message actions"));
  const add = (action, label) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tool";
    button.dataset.action = action;
    button.textContent = label;
    tools.append(button);
  };
  if (!message.deleted_at && message.author === me) add("edit", _("Edit"));
  if (!message.deleted_at && (message.author === me || canModerate)) add("delete", _("Delete"));
  const link = document.createElement("a");
  link.className = "tool";
  link.dataset.action = "link";
  link.href = `/rooms/${encodeURIComponent(slug)}/?seq=${message.seq}`;
  link.textContent = _("Copy link");
  tools.append(link);
  return tools;
}

export class MessageActions {
  /** ``paint(item, message)`` renders a saved message; ``onStatus(text)`` tells the reader. */
  constructor({ list, data, paint, onStatus }) {
    this.list = list;
    this.data = data;
    this.paint = paint;
    this.onStatus = onStatus;
    this.messages = new Map(); // seq -> the message as last rendered (for edits)
    list.addEventListener("click", (event) => this._clicked(event));
    // A long press on a touch screen opens the message's toolbar (and not the browser's menu).
    list.addEventListener("contextmenu", (event) => {
      const item = event.target.closest("li.msg");
      if (!item || event.target.closest("a, textarea")) return;
      if (!matchMedia("(hover: none)").matches) return;
      event.preventDefault();
      for (const open of list.querySelectorAll("li.tools-open")) open.classList.remove("tools-open");
      item.classList.add("tools-open");
      item.querySelector(".msg-tools .tool")?.focus();
    });
  }

  remember(message) {
    if (message.seq !== undefined) this.messages.set(message.seq, message);
  }

  url(seq) {
    return `${this.data.messagesUrl}${seq}/`;
  }

  _clicked(event) {
    const tool = event.target.closest("[data-action]");
    if (!tool) return;
    const item = tool.closest("li.msg");
    const seq = Number(item.dataset.seq);
    if (tool.dataset.action === "link") {
      event.preventDefault();
      const link = new URL(tool.getAttribute("href"), location.href).href;
      navigator.clipboard?.writeText(link).then(
        () => this.onStatus(_("Link copied")),
        () => this.onStatus(fmt(_("Link: %(link)s"), { link })),
      );
      item.dataset.copied = link;
    } else if (tool.dataset.action === "edit") {
      this.edit(seq);
    } else if (tool.dataset.action === "delete") {
      this.remove(seq);
    }
  }

  async remove(seq) {
    if (!window.confirm(_("Delete this message? Everyone in the room sees it as deleted."))) return;
    try {
      const message = await apiRequest(this.url(seq), { method: "DELETE", csrfToken: this.data.csrfToken });
      this._repaint(message);
    } catch (error) {
      this.onStatus(fmt(_("Not deleted: %(reason)s"), { reason: this._reason(error) }));
    }
  }

  /** Edit a message in place: Enter saves, Escape cancels (focus goes back to the composer). */
  edit(seq) {
    const item = this.list.querySelector(`li[data-seq="${seq}"]`);
    const message = this.messages.get(seq);
    if (!item || !message || item.classList.contains("editing")) return;
    item.classList.add("editing");
    const form = document.createElement("form");
    form.className = "edit-form";
    const box = document.createElement("textarea");
    box.value = message.body;
    box.maxLength = 4000;
    box.rows = Math.min(8, message.body.split("\n").length + 1);
    box.setAttribute("aria-label", _("Edit the message"));
    const save = document.createElement("button");
    save.type = "submit";
    save.className = "btn btn-primary";
    save.textContent = _("Save");
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "btn";
    cancel.textContent = _("Cancel");
    const error = document.createElement("p");
    error.className = "edit-error";
    error.setAttribute("role", "alert");
    form.append(box, save, cancel, error);
    item.querySelector(".body").replaceChildren(form);
    box.focus();
    const close = () => { item.classList.remove("editing"); this._repaint(this.messages.get(seq)); };
    cancel.addEventListener("click", close);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); close(); }
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (box.value === message.body) { close(); return; }
      try {
        const saved = await apiRequest(this.url(seq), {
          method: "PATCH", csrfToken: this.data.csrfToken, payload: { body: box.value } });
        item.classList.remove("editing");
        this._repaint(saved);
      } catch (failure) {
        error.textContent = fmt(_("Not saved: %(reason)s"), { reason: this._reason(failure) });
      }
    });
  }

  /** The newest message of yours that can still be edited (for the Up arrow). */
  lastOwn() {
    const mine = [...this.list.querySelectorAll("li.msg.mine:not(.deleted)")];
    return mine.length ? Number(mine[mine.length - 1].dataset.seq) : null;
  }

  /** Why the server refused, in the reader's language. */
  _reason(error) {
    return error.detail ? refusalText(error.detail, this.data.refusals) : error.message;
  }

  _repaint(message) {
    const item = message && this.list.querySelector(`li[data-seq="${message.seq}"]`);
    if (item && !item.classList.contains("editing")) this.paint(item, message);
  }
}
