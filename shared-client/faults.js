// The compare page's fault buttons: each asks the demo (POST /faults/{fault})
// to fault all three variants at once, follows the job (GET /faults/{id})
// until it is done, and fills one result table per fault, a row per variant,
// as each variant finishes. The demo only offers faults on loopback; when it
// does not (GET /faults answers 404), the buttons stay disabled and say why.
//
// Rows come from the network and reach the DOM through textContent only.
// Each figure keeps its machine value in data-value, for tests and scripts.

import { el } from "./stream-pane.js";

// The buttons, in order: the fault's name in the API, its label, and what it does.
const FAULTS = [
  ["stall", "Stall a subscriber", "the demo opens a stream that never reads; when does each variant count and close it?"],
  ["flood", "Flood", "2,000 events of 4 KiB, as fast as the demo can publish, with a reader that stops: delivery, lag cuts, memory"],
  ["cut", "Cut the network", "the page's connections drop for 3 s while events are published: reconnect time, and nothing lost"],
  ["restart", "Restart the variants", "each process is stopped and started again: a reset, or an exact resume with --hub redis"],
  ["max-clients", "Fill max clients", "streams up to --max-clients: the page is refused with 503 and recovers by itself"],
];

// How often a running job is looked at, and for how long at most.
const POLL_MS = 300;
const GIVE_UP_MS = 300000;

export async function mountFaults(container, { variants, onStart, onRow }) {
  const intro = el("p", { class: "faults-intro" }, "Faults, run by the demo against all three variants at once. Each fills a row per variant when it ends, and the code beside each pane moves to the part the fault concerns.");
  const buttons = el("div", { class: "fault-buttons", role: "group", "aria-label": "faults" });
  const status = el("p", { class: "fault-status", role: "status", "data-role": "fault-status" });
  const results = el("div", { class: "fault-results" });
  container.append(intro, buttons, status, results);

  const byName = new Map();
  for (const [name, label, what] of FAULTS) {
    const button = el("button", { type: "button", "data-fault": name, title: what, "aria-describedby": `fault-${name}-what` }, label);
    const description = el("span", { id: `fault-${name}-what`, class: "visually-hidden" }, what);
    button.addEventListener("click", () => run(name));
    buttons.append(button, description);
    byName.set(name, button);
  }

  const offered = await fetch("./faults").then((r) => r.ok).catch(() => false);
  if (!offered) {
    setBusy(true);
    status.textContent = "Faults are off: the demo offers them only when it listens on loopback (--host 127.0.0.1).";
    return;
  }

  function setBusy(busy) {
    for (const button of byName.values()) button.disabled = busy;
    container.setAttribute("aria-busy", String(busy));
  }

  async function run(name) {
    setBusy(true);
    status.textContent = `${name}: starting…`;
    try {
      const response = await fetch(`./faults/${name}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: "{}",
      });
      const answer = await response.json().catch(() => ({}));
      if (response.status !== 202) {
        status.textContent = `${name}: ${answer.error ?? `the demo answered ${response.status}`}`;
        return;
      }
      onStart?.(name, answer);
      await follow(name, answer.id);
    } catch (error) {
      status.textContent = `${name}: ${error.message}`;
    } finally {
      setBusy(false);
    }
  }

  // Polls the job until it is done, drawing each row once it comes.
  async function follow(name, id) {
    const table = resultTable(name);
    const drawn = new Set();
    const started = Date.now();
    while (Date.now() - started < GIVE_UP_MS) {
      const job = await (await fetch(`./faults/${id}`)).json();
      for (const row of job.rows) {
        if (drawn.has(row.variant)) continue;
        drawn.add(row.variant);
        table.fill(row);
        onRow?.(job, row);
      }
      status.textContent = job.state === "done"
        ? `${name}: done in ${job.elapsed_s} s`
        : `${name}: running, ${job.elapsed_s} s (${drawn.size} of ${job.variants.length} variants done)`;
      if (job.state === "done") {
        table.root.dataset.state = "done";
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    status.textContent = `${name}: gave up following job ${id}`;
  }

  // The table of `name`'s results: a fresh one, in place of an earlier run's.
  function resultTable(name) {
    const label = FAULTS.find(([fault]) => fault === name)?.[1] ?? name;
    const body = el("tbody");
    const rows = new Map();
    for (const variant of variants) {
      const row = el("tr", { "data-variant": variant, "data-state": "running" },
        el("th", { scope: "row" }, variant),
        el("td", { class: "verdict" }, "…"),
        el("td", { class: "row-figures" }),
        el("td", { class: "row-note" }, "running…"));
      rows.set(variant, row);
      body.append(row);
    }
    const root = el("table", { class: "fault-table", "data-fault-result": name, "data-state": "running" },
      el("caption", {}, label),
      body);
    const earlier = results.querySelector(`[data-fault-result="${name}"]`);
    if (earlier) earlier.replaceWith(root);
    else results.append(root);
    return { root, fill: (row) => fillRow(rows.get(row.variant), row) };
  }
}

// Draws one variant's result in its table row.
function fillRow(tr, row) {
  if (!tr) return;
  tr.dataset.state = "done";
  tr.dataset.ok = String(Boolean(row.ok));
  const [, verdict, figures, note] = tr.children;
  verdict.textContent = row.ok ? "as promised" : "check";
  verdict.className = `verdict ${row.ok ? "ok" : "bad"}`;
  figures.replaceChildren(...row.figures.map(figure));
  note.textContent = String(row.note ?? "");
}

// One figure: "label value unit", its value in data-value.
function figure(f) {
  const shown = f.value === null || f.value === undefined ? "—"
    : typeof f.value === "boolean" ? (f.value ? "yes" : "no")
    : `${f.value}${f.unit && typeof f.value === "number" ? ` ${f.unit}` : ""}`;
  return el("span", { class: "row-figure", "data-key": String(f.key), "data-value": JSON.stringify(f.value ?? null) },
    el("span", { class: "row-figure-label" }, `${f.label} `),
    el("strong", {}, shown));
}
