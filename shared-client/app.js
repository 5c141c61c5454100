// Entry point of index.html: mounts a single stream pane talking to the server
// that served the page. The controller is exposed on window so automated
// browser tests can drive the pane (close, reconnect, publish) directly.

import { mountStreamPane } from "./stream-pane.js";

const pane = mountStreamPane(document.getElementById("main"));

window.ssePane = pane;
