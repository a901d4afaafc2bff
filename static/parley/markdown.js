// A message body as the reader sees it, the same wherever a message is shown: a safe Markdown
// subset (bold, italic, strike, inline code, code blocks, quotes, lists, line breaks) parsed by
// marked, and automatic links (http, https, mailto only; opened in a new tab with
// rel="noopener noreferrer nofollow"), then sanitized by DOMPurify with an allow-list. HTML in a
// message, headings, tables, images and [text](url) links stay plain text.
import "./vendor/marked.umd.min.js"; // defines globalThis.marked (UMD build)
import DOMPurify from "./vendor/purify.es.js";

const { marked } = globalThis;
const off = () => undefined; // a tokenizer that never matches: the text stays text
marked.use({
  gfm: true,
  breaks: true,
  headerIds: false,
  mangle: false,
  tokenizer: {
    heading: off, lheading: off, html: off, tag: off, table: off, hr: off, def: off,
    link: off, reflink: off,
  },
});

const ALLOWED = {
  ALLOWED_TAGS: ["p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a"],
  ALLOWED_ATTR: ["href", "start"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    if (!node.hasAttribute("href")) {
      node.replaceWith(...node.childNodes); // a link whose address was refused is text
      return;
    }
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** The body of a message as a DocumentFragment, safe to insert. */
export function renderBody(text) {
  return DOMPurify.sanitize(marked.parse(text), ALLOWED);
}
