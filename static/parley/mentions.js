// The mentions page shows bodies as the room does (markdown.js); the server sent them as text.
import { renderBody } from "./markdown.js";

for (const body of document.querySelectorAll(".mention-body[data-markdown]")) {
  body.replaceChildren(renderBody(body.textContent));
  body.classList.add("rendered");
}
