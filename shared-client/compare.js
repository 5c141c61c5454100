// Entry point of compare.html: asks the demo launcher which variants run where,
// and lays out one column per variant: what the page sees of its stream, the
// variant's own internals from its /metrics, its idiom file with the part that
// matters now highlighted, and the stream pane (the same module the single
// page uses). Above the columns, the demo's fault buttons. Publishing from the
// header goes through each pane's controller, so the page has no second copy
// of the client logic.

import { mountStreamPane, el } from "./stream-pane.js";
import { mountCodeView } from "./code-view.js";
import { mountFaults } from "./faults.js";

// How often each variant's /metrics is read, and how long one reading may take.
const METRICS_EVERY_MS = 1000;
const METRICS_TIMEOUT_MS = 2000;

// What each idiom's own gauge counts, by its name on /metrics.
const IDIOM_GAUGES = {
  sse_pipelines_open: "open pipelines",
  sse_client_list_len: "client list length",
  sse_generators_running: "running generators",
};

// The figures of a column: [key, label], what the page sees, then /metrics.
const PAGE_FIGURES = [
  ["state", "state"], ["reconnects", "reconnects"], ["lastId", "last id"],
  ["eventsPerSecond", "events/s"], ["updateDelayMs", "update delay"],
];
const METRIC_FIGURES = [
  ["clients", "connected clients", "sse_connected_clients"],
  ["lagged", "lagged cuts", "sse_lagged_disconnects_total"],
  ["resets", "resets sent", "sse_resets_total"],
  ["replayed", "replayed events", "sse_events_replayed_total"],
  ["memory", "memory (RSS)", "process_resident_memory_bytes"],
];

const grid = document.getElementById("compare");
const form = document.getElementById("publish-all");
const status = document.getElementById("publish-all-status");

// A titled list of figures; returns the cells by key.
function figureList(title, entries, cells) {
  const list = el("dl", { class: "figures", "aria-label": title });
  for (const [key, label] of entries) {
    const dd = el("dd", { "data-figure": key }, "…");
    list.append(el("dt", {}, label), dd);
    cells[key] = dd;
  }
  return el("div", { class: "figure-group" }, el("h3", {}, title), list);
}

// One column per variant: figures on top, then the code, then the pane.
async function column(variant) {
  const root = el("section", { class: "compare-column", "data-variant": variant.name });
  const cells = {};
  const gauge = IDIOM_GAUGES[variant.gauge] ?? variant.gauge;
  const figures = el("div", { class: "figure-groups" },
    figureList("the page sees", PAGE_FIGURES, cells),
    figureList("its /metrics", [...METRIC_FIGURES, ["idiom", gauge]], cells));
  const codeHost = el("div");
  const paneHost = el("div");
  root.append(figures, codeHost, paneHost);
  grid.append(root);
  const pane = mountStreamPane(paneHost, {
    baseUrl: variant.url,
    title: variant.name,
    withCredentials: true,
    topics: variant.topics ?? [],
  });
  pane.onStats((stats) => {
    cells.state.textContent = stats.state;
    cells.reconnects.textContent = String(stats.reconnects);
    cells.lastId.textContent = stats.lastId || "—";
    cells.eventsPerSecond.textContent = stats.eventsPerSecond.toFixed(1);
    cells.updateDelayMs.textContent = stats.updateDelayMs == null ? "—" : `${stats.updateDelayMs} ms`;
  });
  watchMetrics(variant, cells);
  const code = await mountCodeView(codeHost, variant.name);
  code.show("join");
  return { pane, code };
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

// Polls a variant's own /metrics (not through the demo's relay, so that a cut
// network does not hide it); a variant that stopped answering shows as down.
// One poll at a time, each bounded, so that a variant that hangs cannot pile
// requests up in the browser's connection pool.
function watchMetrics(variant, cells) {
  const shown = [...METRIC_FIGURES.map(([key, , name]) => [key, name]), ["idiom", variant.gauge]];
  let polling = false;
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      // no-store: each poll must be a fresh reading, never a cached one.
      const response = await fetch(`${variant.direct}/metrics`, {
        credentials: "include",
        cache: "no-store",
        signal: AbortSignal.timeout(METRICS_TIMEOUT_MS),
      });
      const text = await response.text();
      for (const [key, name] of shown) {
        const value = sample(text, name);
        cells[key].textContent = value == null ? "—"
          : key === "memory" ? `${(value / 1048576).toFixed(1)} MiB`
          : String(value);
      }
    } catch {
      for (const [key] of shown) cells[key].textContent = "down";
    } finally {
      polling = false;
    }
  }
  poll();
  setInterval(poll, METRICS_EVERY_MS);
}

async function main() {
  const variants = await (await fetch("./variants.json")).json();
  const columns = new Map();
  for (const variant of variants) {
    columns.set(variant.name, await column(variant));
    const option = el("option", { value: variant.name }, variant.name);
    form.elements.target.append(option);
  }
  window.ssePanes = new Map([...columns].map(([name, c]) => [name, c.pane]));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { target, event: name, data, token } = form.elements;
    const chosen = target.value === "all" ? [...columns.keys()] : [target.value];
    const results = await Promise.all(chosen.map((key) => columns.get(key).pane.publish(name.value, data.value, token.value)));
    status.textContent = results
      .map((result, i) => `${chosen[i]}: ${result.ok ? `published ${result.id}` : `error ${result.status}: ${result.error}`}`)
      .join(" · ");
  });
  await mountFaults(document.getElementById("faults"), {
    variants: variants.map((v) => v.name),
    // While a fault runs, each code view shows the part of its idiom it concerns.
    onStart: (_, job) => {
      for (const { code } of columns.values()) code.show(job.moment);
    },
    onRow: (job, row) => columns.get(row.variant)?.code.show(job.moment),
  });
}

main();
