// The code beside a compare pane: the variant's idiom file, as the demo was
// built from it (GET /code/{variant}), with the lines of one moment
// highlighted and scrolled into view: where a client joins, where a lagging
// one is cut, where a client's place is freed, the shutdown path. Each moment
// links to the paragraph of docs/IDIOMS.md that explains it.
//
// The source reaches the DOM through textContent only, one list item a line.
// The view's state is on its root for tests and styles: data-moment, and
// data-first / data-last, the highlighted lines.

// The moments, in the order of their buttons.
const MOMENTS = [
  ["join", "join"],
  ["lag", "lag"],
  ["disconnect", "disconnect"],
  ["shutdown", "shutdown"],
];

import { el } from "./stream-pane.js";

// Lines shown above the first highlighted one, for context.
const CONTEXT_LINES = 2;

export async function mountCodeView(container, variant) {
  const root = el("section", { class: "code-view", "data-code-view": variant, "aria-label": `${variant} idiom code` });
  const path = el("p", { class: "code-path mono" });
  const moments = el("div", { class: "code-moments", role: "group", "aria-label": "show the code for" });
  const title = el("p", { class: "code-title", role: "status" });
  const docs = el("a", { class: "code-docs", target: "_blank", rel: "noopener" });
  const scroll = el("div", { class: "code-scroll", tabindex: "0", "aria-label": "source" });
  const lines = el("ol", { class: "code-lines" });
  scroll.append(lines);
  root.append(path, moments, title, docs, scroll);
  container.append(root);

  const response = await fetch(`./code/${encodeURIComponent(variant)}`);
  if (!response.ok) {
    title.textContent = `no code for ${variant} (${response.status})`;
    return { show() {} };
  }
  const file = await response.json();
  path.textContent = file.path;
  for (const [number, text] of String(file.source).split("\n").entries()) {
    // Indentation at half width, so that a third of a screen shows more code; an empty
    // line still takes a line's height (a space keeps it from collapsing).
    const shown = text.replace(/^ +/, (indent) => " ".repeat(Math.ceil(indent.length / 2)));
    lines.append(el("li", { "data-line": String(number + 1) }, shown || " "));
  }
  const buttons = new Map();
  for (const [moment, label] of MOMENTS) {
    if (!file.regions[moment]) continue;
    const button = el("button", { type: "button", "data-moment": moment, "aria-pressed": "false" }, label);
    button.addEventListener("click", () => show(moment));
    buttons.set(moment, button);
    moments.append(button);
  }

  // Highlights the region of `moment` and scrolls the code (not the page) to it.
  function show(moment) {
    const region = file.regions[moment];
    if (!region) return;
    root.dataset.moment = moment;
    root.dataset.first = String(region.first);
    root.dataset.last = String(region.last);
    for (const [name, button] of buttons) button.setAttribute("aria-pressed", String(name === moment));
    title.textContent = `lines ${region.first}–${region.last}: ${region.title}`;
    docs.textContent = region.docs_title;
    docs.href = region.docs;
    for (const line of lines.children) {
      const number = Number(line.dataset.line);
      line.classList.toggle("hl", number >= region.first && number <= region.last);
    }
    const first = lines.children[Math.max(0, region.first - 1 - CONTEXT_LINES)];
    scroll.scrollTop = first ? first.offsetTop : 0;
  }

  return { show };
}
