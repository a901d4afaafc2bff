// Translated text for the modules: gettext() and friends come from Django's JavaScriptCatalog
// (/jsi18n/, a classic script loaded by base.html before any module, in the page's language).
// Without the catalog (a page that does not load it) the English source text is shown.

/** The translation of ``text`` in the page's language (``text`` itself when none). */
export const _ = (text) => (window.gettext ? window.gettext(text) : text);

/** ``text`` (already translated) with its ``%(name)s`` placeholders filled from ``values``. */
export const fmt = (text, values) =>
  text.replace(/%\((\w+)\)s/g, (_match, name) => String(values[name]));

/** The translated singular or plural form for ``count`` (named so makemessages finds it). */
export const ngettext = (singular, pluralText, count) =>
  window.ngettext ? window.ngettext(singular, pluralText, count)
    : count === 1 ? singular : pluralText;
