// The colour theme, set before the first paint. A logged-in reader's choice is kept on the
// server (data-user-theme on <html>, set with POST /account/theme/), so it follows them to any
// browser; an anonymous reader's in this browser (localStorage). No choice (""): the system's
// (prefers-color-scheme), followed live.
(() => {
  const KEY = "parley-theme";
  const root = document.documentElement;
  const system = window.matchMedia("(prefers-color-scheme: dark)");
  const kept = "userTheme" in root.dataset;
  const chosen = () => (kept ? root.dataset.userTheme : localStorage.getItem(KEY));
  const apply = () => {
    const theme = chosen() || (system.matches ? "dark" : "light");
    root.dataset.theme = theme;
    const toggle = document.getElementById("theme-toggle");
    if (toggle) toggle.setAttribute("aria-pressed", String(theme === "dark"));
  };
  const keep = (theme) => {
    localStorage.setItem(KEY, theme);
    if (!kept) return;
    root.dataset.userTheme = theme;
    fetch(root.dataset.themeUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": root.dataset.csrf },
      body: new URLSearchParams({ theme }),
    }).then((response) => { root.dataset.themeSaved = response.ok ? theme : "failed"; });
  };
  apply();
  system.addEventListener("change", apply);
  document.addEventListener("DOMContentLoaded", () => {
    apply();
    document.getElementById("theme-toggle")?.addEventListener("click", () => {
      keep(root.dataset.theme === "dark" ? "light" : "dark");
      apply();
    });
  });
})();
