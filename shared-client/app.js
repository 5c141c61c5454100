// Entry point of index.html: mounts a single stream pane talking to the server
// that served the page, on the topics the page's URL names (none: every topic,
// or with a token cookie, the ones it grants). The controller is exposed on
// window so automated browser tests can drive the pane directly.

import { mountStreamPane } from "./stream-pane.js";

// The topics live in the page's own URL (?topic=a&topic=b), so a reload keeps them.
const topics = new URLSearchParams(location.search).getAll("topic");
const field = document.getElementById("topics-field");
field.value = topics.join(", ");
document.getElementById("topics").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = new URLSearchParams();
  for (const topic of field.value.split(",").map((t) => t.trim()).filter(Boolean)) {
    query.append("topic", topic);
  }
  const text = query.toString();
  location.search = text ? `?${text}` : "";
});

const pane = mountStreamPane(document.getElementById("main"), { topics });

window.ssePane = pane;
