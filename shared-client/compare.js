// Entry point of compare.html: asks the demo launcher which variants run where,
// mounts one stream pane per variant (the same module the single page uses),
// and adds each variant's own figures from its /metrics: connected clients and
// resident memory. Publishing from the header goes through each pane's
// controller, so the page has no second copy of the client logic.

import { mountStreamPane } from "./stream-pane.js";

// How often each variant's /metrics is read.
const METRICS_EVERY_MS = 1000;

const grid = document.getElementById("compare");
const form = document.getElementById("publish-all");
const status = document.getElementById("publish-all-status");

// One column per variant: figures on top, the pane below.
function column(variant) {
  const root = document.createElement("section");
  root.className = "compare-column";
  root.dataset.variant = variant.name;
  const figures = document.createElement("dl");
  figures.className = "figures";
  const cells = {};
  for (const [key, label] of [
    ["state", "state"], ["reconnects", "reconnects"], ["lastId", "last id"],
    ["eventsPerSecond", "events/s"], ["updateDelayMs", "update delay"],
    ["clients", "connected clients"], ["memory", "memory (RSS)"],
  ]) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.dataset.figure = key;
    dd.textContent = "…";
    figures.append(dt, dd);
    cells[key] = dd;
  }
  const paneHost = document.createElement("div");
  root.append(figures, paneHost);
  grid.append(root);
  const pane = mountStreamPane(paneHost, { baseUrl: variant.url, title: variant.name, withCredentials: true });
  pane.onStats((stats) => {
    cells.state.textContent = stats.state;
    cells.reconnects.textContent = String(stats.reconnects);
    cells.lastId.textContent = stats.lastId || "—";
    cells.eventsPerSecond.textContent = stats.eventsPerSecond.toFixed(1);
    cells.updateDelayMs.textContent = stats.updateDelayMs == null ? "—" : `${stats.updateDelayMs} ms`;
  });
  watchMetrics(variant.url, cells);
  return pane;
}

// Reads one sample from Prometheus text, summed over labels.
function sample(text, name) {
  let total = null;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      total = (total ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return total;
}

// Polls a variant's /metrics; a variant that stopped answering shows as down.
function watchMetrics(url, cells) {
  async function poll() {
    try {
      const response = await fetch(`${url}/metrics`, { credentials: "include" });
      const text = await response.text();
      const clients = sample(text, "sse_connected_clients");
      const rss = sample(text, "process_resident_memory_bytes");
      cells.clients.textContent = clients == null ? "—" : String(clients);
      cells.memory.textContent = rss == null ? "—" : `${(rss / 1048576).toFixed(1)} MiB`;
    } catch {
      cells.clients.textContent = "down";
      cells.memory.textContent = "down";
    }
  }
  poll();
  setInterval(poll, METRICS_EVERY_MS);
}

async function main() {
  const variants = await (await fetch("./variants.json")).json();
  const panes = new Map();
  for (const variant of variants) {
    panes.set(variant.name, column(variant));
    const option = document.createElement("option");
    option.value = variant.name;
    option.textContent = variant.name;
    form.elements.target.append(option);
  }
  window.ssePanes = panes;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { target, event: name, data, token } = form.elements;
    const chosen = target.value === "all" ? [...panes.keys()] : [target.value];
    const results = await Promise.all(chosen.map((key) => panes.get(key).publish(name.value, data.value, token.value)));
    status.textContent = results
      .map((result, i) => `${chosen[i]}: ${result.ok ? `published ${result.id}` : `error ${result.status}: ${result.error}`}`)
      .join(" · ");
  });
}

main();
