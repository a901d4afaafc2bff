// The staff dashboard: figures and server-made SVG charts replaced on every push from
// /ws/dashboard/ (sent when analytics processes events; nothing is polled).

import { _ } from "./i18n.js";

const state = document.getElementById("dash-state");
let attempt = 0;

function render(data) {
  for (const [name, value] of Object.entries(data.figures)) {
    const cell = document.getElementById(`fig-${name}`);
    if (cell) cell.textContent = value === null ? "–" : String(value);
  }
  // The charts are SVG made by the server from escaped text (analytics/charts.py), data only:
  // each figure keeps its caption, the title in the reader's language.
  for (const [name, svg] of Object.entries(data.charts)) {
    const box = document.querySelector(`#chart-${name} .chart-box`);
    if (box) box.innerHTML = svg;
  }
  const rows = Object.entries(data.subscribers).map(([name, s]) => {
    const row = document.createElement("tr");
    row.dataset.subscriber = name;
    for (const value of [name, s.lag, s.pending, s.dead, s.processed, s.workers.length]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.append(cell);
    }
    return row;
  });
  document.querySelector("#subscribers tbody").replaceChildren(...rows);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/dashboard/`);
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type !== "dashboard") return;
    attempt = 0;
    state.dataset.state = "live";
    state.textContent = _("live");
    render(data);
  };
  socket.onclose = (event) => {
    state.dataset.state = "offline";
    state.textContent = _("offline — reconnecting");
    if (event.code === 4401 || event.code === 4403) return;
    const ceiling = Math.min(15000, 500 * 2 ** attempt++);
    setTimeout(connect, ceiling / 2 + Math.random() * ceiling / 2);
  };
}

connect();
