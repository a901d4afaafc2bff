// A refusal in the reader's language. The server refuses in English (the API's and the socket's
// "detail", for programs); the room page's data carries the translations of those details
// (chat/refusals.py, empty in English), each written as the English detail with %(name)s where
// a value goes. The value is read back from the detail; a detail not listed is shown as it is.

const PLACEHOLDER = /%\((\w+)\)s/g;
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** ``detail`` as ``translations`` ({English template: translated template}) have it. */
export function refusalText(detail, translations = {}) {
  for (const [template, translated] of Object.entries(translations)) {
    const names = [];
    const pattern = template.split(PLACEHOLDER).map((part, i) => {
      if (i % 2 === 0) return escape(part);
      names.push(part);
      return "([\\s\\S]+?)";
    }).join("");
    const match = new RegExp(`^${pattern}$`).exec(detail);
    if (!match) continue;
    const values = Object.fromEntries(names.map((name, i) => [name, match[i + 1]]));
    return translated.replace(PLACEHOLDER, (_match, name) => values[name]);
  }
  return detail;
}
