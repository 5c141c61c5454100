// A self-contained view of one Server-Sent Events stream: connection state,
// the events as they arrive, and a form to publish new ones. It is a module
// with a single mount function so the same pane can be placed once on the
// index page or several times side by side on a compare page.
//
// Everything received from the network reaches the DOM through textContent
// or text nodes, never innerHTML, so event data can never inject markup.
// Evaluating this module touches no DOM; only mountStreamPane does.

// Types with a colour of their own; any other name is drawn as "custom".
const KNOWN_TYPES = new Set(["message", "greeting", "update", "reset", "welcome"]);

// EventSource only delivers a named event to a listener registered for that
// exact name, so we listen to the contract's names plus a few likely ones.
// "message" is absent on purpose: onmessage already receives it.
const DEFAULT_LISTENED = ["welcome", "reset", "greeting", "update", "custom", "chat", "note"];

// Same rule as the servers, so we only listen for names they can accept.
const EVENT_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

// Events per second are averaged over this window to smooth out a 2 s tick.
const RATE_WINDOW_MS = 5000;

// Stats callbacks are batched so a burst of events costs a few calls, not hundreds.
const STATS_THROTTLE_MS = 250;

// When the browser gives up on a stream for good (any non-200 answer, such as a
// 503 from a full server or a 502 from a proxy while an instance restarts, is
// fatal for EventSource), the pane tries again by itself: capped exponential
// backoff with full jitter, so that pages cut off together do not come back
// together. A 401 or 403 will not heal by retrying soon, so it waits the cap.
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_CAP_MS = 30000;

export function mountStreamPane(container, options = {}) {
  const {
    baseUrl = "",
    title = "",
    withCredentials = false,
    maxEvents = 200,
    topics = [],
  } = options;
  const origin = baseUrl.replace(/\/+$/, "");

  const view = buildView(title);
  container.append(view.root);

  let source = null;
  let retryTimer = null;
  let retryAt = 0;
  let failures = 0; // fatal closes since the last open, for the backoff
  let lastId = "";
  let server = "";
  let state = "connecting";
  let opens = 0;
  let updateDelayMs = null;
  let recentEvents = []; // arrival times, for the events-per-second figure
  const listened = new Set(DEFAULT_LISTENED);
  const statsCallbacks = new Set();

  // --- connection -------------------------------------------------------

  function streamUrl() {
    // A new EventSource cannot set the Last-Event-ID header, so the id we
    // resume from travels in the query string instead, beside the topics.
    const query = new URLSearchParams();
    if (lastId) query.set("lastEventId", lastId);
    for (const topic of topics) query.append("topic", topic);
    const text = query.toString();
    return `${origin}/stream${text ? `?${text}` : ""}`;
  }

  function connect() {
    source = new EventSource(streamUrl(), { withCredentials });
    source.onopen = onOpen;
    source.onerror = onError;
    source.onmessage = onEvent;
    for (const type of listened) source.addEventListener(type, onEvent);
    setState("connecting");
  }

  // The handlers ignore anything from a source we have already replaced.
  function onOpen(event) {
    if (event.target !== source) return;
    opens += 1;
    failures = 0;
    view.reconnects.textContent = String(Math.max(0, opens - 1));
    showWaiting("");
    setState("open");
  }

  function onError(event) {
    if (event.target !== source) return;
    // An error is routine while the browser retries by itself (CONNECTING).
    // CLOSED means it has given up for good; then the pane takes over.
    if (source.readyState === EventSource.CLOSED) {
      scheduleRetry();
    } else {
      setState("connecting");
    }
  }

  // Finds out why the stream was refused (EventSource does not say), then
  // waits out the backoff and connects again, resuming after the last id.
  async function scheduleRetry() {
    const failed = source;
    failed.close();
    failures += 1;
    setState("waiting");
    const why = await refusal();
    if (source !== failed) return; // closed or reconnected by hand meanwhile
    const denied = why.status === 401 || why.status === 403;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** (failures - 1));
    const delay = denied ? BACKOFF_CAP_MS : Math.random() * ceiling;
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, delay);
    showWaiting(why.text);
  }

  // The stream's answer as a sentence: one request, aborted once its status is in.
  async function refusal() {
    const controller = new AbortController();
    try {
      const response = await fetch(streamUrl(), {
        credentials: withCredentials ? "include" : "same-origin",
        headers: { Accept: "text/event-stream" },
        signal: controller.signal,
      });
      const ok = response.ok && (response.headers.get("content-type") || "").startsWith("text/event-stream");
      if (ok) return { status: 200, text: "the server answered again" };
      const body = await response.json().catch(() => ({}));
      const label =
        response.status === 401 ? "not authorized (401)"
        : response.status === 403 ? "forbidden (403)"
        : `the server answered ${response.status}`;
      return { status: response.status, text: body.error ? `${label}: ${body.error}` : label };
    } catch (error) {
      return { status: 0, text: "the server cannot be reached" };
    } finally {
      controller.abort();
    }
  }

  // "waiting" tells the user why and when the next try is; refreshed each second.
  function showWaiting(why) {
    view.waiting.dataset.why = why;
    renderWaiting();
  }

  function renderWaiting() {
    const why = view.waiting.dataset.why || "";
    if (!why || retryTimer === null) {
      view.waiting.textContent = why && state === "waiting" ? why : "";
      return;
    }
    const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    view.waiting.textContent = `${why}; trying again in ${seconds} s (attempt ${failures + 1})`;
  }

  function cancelRetry() {
    if (retryTimer !== null) clearTimeout(retryTimer);
    retryTimer = null;
    showWaiting("");
  }

  function listen(type) {
    if (type === "message" || listened.has(type)) return;
    listened.add(type);
    source?.addEventListener(type, onEvent);
  }

  function close() {
    cancelRetry();
    source?.close();
    source = null;
    setState("closed");
  }

  function reconnect() {
    cancelRetry();
    source?.close();
    showNotice(null);
    connect();
  }

  // --- incoming events --------------------------------------------------

  function onEvent(event) {
    if (event.target !== source) return;

    // The browser copies the previous id onto events that carry none (such
    // as welcome after an automatic reconnect), so an id only counts as this
    // event's own when it differs from the last one we saw.
    const id = event.lastEventId && event.lastEventId !== lastId ? event.lastEventId : "";
    if (id) {
      lastId = id;
      view.lastId.textContent = id;
    }

    const row = eventRow(event.type, id);
    const data = row.querySelector(".event-data");

    if (event.type === "update") {
      renderUpdate(row, data, event.data);
    } else if (event.type === "welcome") {
      const welcome = parseJson(event.data);
      if (typeof welcome?.server === "string") {
        server = welcome.server;
        view.server.textContent = server;
      }
      // The server says which topics the stream carries: the ones asked for, or,
      // with a token and none asked for, the ones the token grants.
      if (Array.isArray(welcome?.topics)) {
        view.topics.textContent = welcome.topics.join(", ");
      }
      data.textContent = event.data;
    } else if (event.type === "reset") {
      const reset = parseJson(event.data);
      showNotice(reset ?? { message: event.data });
      data.textContent = reset ? `${reset.reason}: ${reset.message}` : event.data;
    } else {
      data.textContent = event.data;
    }

    view.events.prepend(row);
    // Bounded so a page left open for a day stays as fast as a fresh one.
    while (view.events.childElementCount > maxEvents) {
      view.events.lastElementChild.remove();
    }

    recentEvents.push(Date.now());
    scheduleStats();
  }

  function renderUpdate(row, data, text) {
    const update = parseJson(text);
    const valid =
      Number.isFinite(update?.timestamp) &&
      Number.isFinite(update?.value) &&
      typeof update?.status === "string";
    if (!valid) {
      row.classList.add("unparsed");
      row.dataset.unparsed = "true";
      data.textContent = text;
      return;
    }
    updateDelayMs = Date.now() - update.timestamp;
    const bar = el("span", { class: "bar" });
    const fill = el("span", { class: "bar-fill" });
    fill.style.width = `${Math.min(100, Math.max(0, update.value))}%`;
    bar.append(fill);
    data.append(`value ${update.value} · ${update.status} · ${updateDelayMs} ms late`, bar);
  }

  function showNotice(reset) {
    view.notice.replaceChildren();
    if (!reset) return;
    view.notice.append(
      el("strong", {}, `reset${reset.reason ? ` (${reset.reason})` : ""}`),
      " ",
      String(reset.message ?? ""),
      el("span", { class: "notice-oldest" }, `oldest available id: ${reset.oldest_id ?? "none"}`),
    );
  }

  // --- publishing -------------------------------------------------------

  async function publish(eventName = "", data = "", token = "", topic = "") {
    const name = String(eventName ?? "").trim();
    // Listen before sending: the event may arrive before the POST answers.
    if (EVENT_NAME.test(name)) listen(name);

    const body = { data: String(data ?? "") };
    if (name) body.event = name;
    const onTopic = String(topic ?? "").trim();
    if (onTopic) body.topic = onTopic;
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;

    let result;
    try {
      const response = await fetch(`${origin}/publish`, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        credentials: withCredentials ? "include" : "same-origin",
      });
      const payload = await response.json().catch(() => ({}));
      result = response.ok
        ? { ok: true, status: response.status, id: payload.id }
        : { ok: false, status: response.status, error: payload.error || response.statusText || "request failed" };
    } catch (error) {
      result = { ok: false, status: 0, error: `network error: ${error.message}` };
    }

    view.publishStatus.className = `publish-status ${result.ok ? "ok" : "error"}`;
    view.publishStatus.textContent = result.ok
      ? `published ${result.id}`
      : result.status
        ? `error ${result.status}: ${result.error}`
        : result.error;
    return result;
  }

  view.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = view.form.elements;
    view.submit.disabled = true;
    await publish(fields.event.value, fields.data.value, fields.token.value, fields.topic.value);
    view.submit.disabled = false;
  });
  view.close.addEventListener("click", close);
  view.reconnect.addEventListener("click", reconnect);

  // --- state and stats --------------------------------------------------

  function setState(next) {
    state = next;
    view.state.textContent = next;
    view.state.dataset.state = next;
    scheduleStats();
  }

  function currentStats() {
    return {
      state,
      reconnects: Math.max(0, opens - 1),
      lastId: lastId || null,
      eventsPerSecond: Math.round((recentEvents.length / (RATE_WINDOW_MS / 1000)) * 10) / 10,
      updateDelayMs,
      server: server || null,
    };
  }

  let statsTimer = null;
  let lastStatsJson = "";

  function scheduleStats() {
    if (statsTimer !== null || statsCallbacks.size === 0) return;
    statsTimer = setTimeout(() => {
      statsTimer = null;
      emitStats();
    }, STATS_THROTTLE_MS);
  }

  // Calls back with the stats if they changed since the last call.
  function emitStats() {
    const stats = currentStats();
    const json = JSON.stringify(stats);
    if (json === lastStatsJson) return;
    lastStatsJson = json;
    for (const callback of statsCallbacks) callback(stats);
  }

  // The rate decays even when nothing arrives, so it needs its own clock; the
  // countdown to the next try shares it. It also reports the stats itself: on
  // the compare page, after a run of refusals, headless Chromium was seen to
  // leave a throttle timer pending for half a minute, and figures must not
  // stay stale for longer than this clock's tick.
  setInterval(() => {
    const cutoff = Date.now() - RATE_WINDOW_MS;
    recentEvents = recentEvents.filter((time) => time > cutoff);
    renderWaiting();
    emitStats();
  }, 1000);

  function onStats(callback) {
    statsCallbacks.add(callback);
    const stats = currentStats();
    lastStatsJson = JSON.stringify(stats);
    callback(stats);
    return () => statsCallbacks.delete(callback);
  }

  connect();
  return { close, reconnect, publish, onStats };
}

// --- DOM helpers ----------------------------------------------------------

// createElement with attributes; string children become text nodes, never markup.
// Exported for the compare page's other modules, which build their DOM the same way.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function parseJson(text) {
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

function eventRow(type, id) {
  const colour = KNOWN_TYPES.has(type) ? type : "custom";
  return el(
    "li",
    { class: `event type-${colour}`, "data-type": type, "data-id": id },
    el("span", { class: "event-type" }, type),
    el("span", { class: "event-data" }),
    el("span", { class: "event-id" }, id || "—"),
  );
}

function statusItem(label, valueNode) {
  return el("div", {}, el("dt", {}, label), valueNode);
}

function buildView(title) {
  const state = el("dd", { "data-role": "state", "data-state": "connecting", class: "state" }, "connecting");
  const reconnects = el("dd", { "data-role": "reconnects" }, "0");
  const server = el("dd", { "data-role": "server" });
  const lastId = el("dd", { "data-role": "last-id", class: "mono" });
  const topics = el("dd", { "data-role": "topics", class: "mono" });
  const notice = el("div", { "data-role": "notice", class: "notice", role: "status" });
  const waiting = el("p", { "data-role": "waiting", class: "waiting", role: "status" });
  const events = el("ol", { "data-role": "events", class: "events" });
  const close = el("button", { type: "button", "data-role": "close" }, "Close");
  const reconnect = el("button", { type: "button", "data-role": "reconnect" }, "Reconnect");
  const submit = el("button", { type: "submit" }, "Publish");
  const publishStatus = el("p", { "data-role": "publish-status", class: "publish-status", role: "status" });

  const form = el(
    "form",
    { "data-role": "publish", class: "publish" },
    el("label", {}, "event ", el("input", { name: "event", placeholder: "message", autocomplete: "off" })),
    el("label", {}, "topic ", el("input", { name: "topic", placeholder: "default", autocomplete: "off" })),
    el("label", {}, "token ", el("input", { name: "token", type: "password", autocomplete: "off" })),
    el("label", { class: "wide" }, "data ", el("textarea", { name: "data", rows: "2" })),
    el("div", { class: "wide publish-actions" }, submit, publishStatus),
  );

  const root = el(
    "section",
    { class: "pane", "data-pane": title },
    // No heading when untitled: the single-pane page has its own, and the
    // server name in the status line already says what the pane shows.
    ...(title ? [el("h2", { class: "pane-title" }, title)] : []),
    el(
      "dl",
      { class: "pane-status" },
      statusItem("state", state),
      statusItem("reconnects", reconnects),
      statusItem("server", server),
      statusItem("last id", lastId),
      statusItem("topics", topics),
    ),
    el("div", { class: "pane-actions" }, close, reconnect),
    waiting,
    notice,
    form,
    events,
  );

  return { root, state, reconnects, server, lastId, topics, notice, waiting, events, close, reconnect, form, submit, publishStatus };
}
