/*
 * The demo page: one card per catalogue endpoint.
 *
 * Theory of operation
 * ===================
 *
 * A card owns one or more *lanes*. A lane is one HTTP request: it goes from
 * "connecting" (the request is sent), to "open" (the status line and headers
 * have arrived), to "closed" or "error". Most cards have one lane; the cards
 * for GET /normal and GET /conditional-stream run two at once, a JSON answer
 * and an event stream, and draw when each one's data arrived on one time axis.
 *
 * A lane reads its response in one of two ways.
 *
 * EventSource is the browser's own SSE client, and the natural choice for a
 * GET stream. It has two habits a demo must manage:
 *   - When the stream ends, it *reconnects* (after the `retry:` delay, a few
 *     seconds by default), which would run a finished stream again, forever.
 *     It reports the end as an `error` event while `readyState` is
 *     CONNECTING. So on that error we call close(): the stream has ended.
 *     EventSource cannot tell a complete body from an aborted one; fetch can.
 *   - A server's `event: error` arrives through the same "error" listener as
 *     the connection's own errors. Only the server's is a MessageEvent, with
 *     `data`.
 * close() closes the connection. The server's receive() then returns
 * http.disconnect, and asgi_stream's StreamingResponse stops the generator.
 *
 * fetch() is for everything else: a POST (EventSource can only GET) and
 * plain JSON. Its body is a ReadableStream of bytes, as they arrive. For an
 * event stream we decode the bytes as UTF-8 (TextDecoderStream keeps a
 * character split between two chunks whole) and parse the SSE format
 * ourselves, exactly as EventSource would: see EventStreamParser. Stop calls
 * AbortController.abort(), which closes the connection too.
 */
"use strict";

/* ---------- The SSE format, parsed as the HTML standard says (§9.2.6) ---------- */

/**
 * Turns the text of an event stream, fed in pieces of any size, into events.
 *
 * Lines end at CRLF, LF or CR. A line is a `field: value` (one space after the
 * colon is dropped), a `:comment`, or blank. `data` lines add to the event's
 * data, joined with "\n"; `event` sets its type; a blank line dispatches it.
 * An event with no data line is not dispatched, and an event that the stream
 * ends in the middle of is dropped: it was never complete.
 */
class EventStreamParser {
  constructor(onEvent) {
    this.onEvent = onEvent; // (type, data, lastEventId) => void
    this.pending = ""; // text after the last line break
    this.skipLF = false; // the last piece ended in CR: a LF next is the same line break
    this.data = [];
    this.type = "";
    this.lastEventId = "";
  }

  feed(text) {
    if (this.skipLF && text.startsWith("\n")) text = text.slice(1);
    this.skipLF = false;
    const buffer = this.pending + text;
    const lineBreak = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = lineBreak.exec(buffer)) !== null) {
      this.line(buffer.slice(start, match.index));
      start = lineBreak.lastIndex;
      // A CR at the very end may be the first half of a CRLF split between pieces.
      if (match[0] === "\r" && start === buffer.length) this.skipLF = true;
    }
    this.pending = buffer.slice(start);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return; // a comment, such as a heartbeat
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    // `retry` only matters to a client that reconnects; other fields are ignored.
  }

  dispatch() {
    const data = this.data;
    const type = this.type || "message";
    this.data = [];
    this.type = "";
    if (data.length > 0) this.onEvent(type, data.join("\n"), this.lastEventId);
  }
}

/* ---------- Lanes: one request each, and the two ways to read it ---------- */

const FINISHED = new Set(["closed", "error"]);

class Lane {
  constructor(card, label, request) {
    this.card = card;
    this.label = label; // shown in a two-lane card's log
    this.request = request; // "GET /progress?tick=0.01"
    this.state = "connecting";
    this.stop = () => {}; // replaced by the reader: closes the connection
  }

  get finished() {
    return FINISHED.has(this.state);
  }

  setState(state, detail = "") {
    if (this.finished) return; // an abort after the end changes nothing
    this.state = state;
    this.card.laneChanged(this, detail);
  }

  receive(type, data) {
    if (!this.finished) this.card.received(this, type, data);
  }
}

/** Reads a GET event stream with EventSource; `types` are the named events to listen for. */
function readWithEventSource(lane, url, types) {
  const source = new EventSource(url);
  let opened = false;
  const end = (state, detail) => {
    source.close(); // no reconnection, and the connection is closed now
    lane.setState(state, detail);
  };
  const deliver = (event) => {
    lane.receive(event.type, event.data);
    if (event.type === "done") end("closed", "closed by the page after `done`");
  };
  source.onopen = () => {
    opened = true;
    lane.setState("open");
  };
  source.onmessage = deliver;
  for (const type of types) source.addEventListener(type, deliver);
  source.addEventListener("error", (event) => {
    if (event instanceof MessageEvent) deliver(event); // the server's `event: error`
    else if (opened) end("closed", "the stream ended (EventSource would reconnect)");
    else end("error", "the connection failed, or the answer was not an event stream");
  });
  lane.stop = () => end("closed", "stopped");
}

/** Reads any response with fetch(): an event stream event by event, anything else whole. */
async function readWithFetch(lane, url, method) {
  const controller = new AbortController();
  lane.stop = () => controller.abort();
  try {
    const response = await fetch(url, { method, signal: controller.signal });
    const contentType = response.headers.get("content-type") || "";
    if (!response.ok) {
      lane.receive("error", await response.text());
      lane.setState("error", `${response.status} ${response.statusText}`);
      return;
    }
    lane.setState("open", `${response.status}, ${contentType}`);
    if (!contentType.startsWith("text/event-stream")) {
      lane.receive(contentType.startsWith("application/json") ? "json" : "body", await response.text());
    } else {
      const parser = new EventStreamParser((type, data) => lane.receive(type, data));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    }
    lane.setState("closed", "the body is complete");
  } catch (error) {
    // A body cut short (the server aborted the stream) rejects the read: an error.
    if (controller.signal.aborted) lane.setState("closed", "stopped");
    else lane.setState("error", String(error));
  }
}

/* ---------- Views: what a card draws besides its event log ---------- */

/** /progress: a bar that follows `percentage`, and "done" at the end. */
class ProgressView {
  constructor(element) {
    element.innerHTML =
      '<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0">' +
      '<div class="fill"></div></div><div class="progress-label">not started</div>';
    this.bar = element.querySelector(".bar");
    this.fill = element.querySelector(".fill");
    this.label = element.querySelector(".progress-label");
  }

  reset() {
    this.show(0, "waiting for the first event");
    this.bar.classList.remove("done");
  }

  show(percentage, text) {
    this.bar.setAttribute("aria-valuenow", String(percentage));
    this.fill.style.width = `${percentage}%`;
    this.label.textContent = `${percentage}%, ${text}`;
  }

  event(lane, type, data) {
    if (type === "message") {
      const progress = JSON.parse(data);
      this.show(Math.round(progress.percentage), progress.message);
    } else if (type === "done") {
      this.bar.classList.add("done");
      this.label.textContent += `: done (${data})`;
    }
  }
}

/** /logs: the last lines of the file, like `tail -f` in a terminal. */
class TailView {
  static MAX_LINES = 500;

  constructor(element) {
    this.tail = document.createElement("pre");
    this.tail.className = "tail";
    element.append(this.tail);
  }

  reset() {
    this.tail.replaceChildren();
  }

  event(lane, type, data) {
    const line = document.createElement("div");
    line.textContent = data;
    if (type === "error") line.className = "error";
    this.tail.append(line);
    while (this.tail.childElementCount > TailView.MAX_LINES) this.tail.firstElementChild.remove();
    this.tail.scrollTop = this.tail.scrollHeight;
  }
}

/** /chat-stream: a message box, and the reply growing token by token. */
class ChatView {
  constructor(element, inputs) {
    this.message = document.createElement("input");
    this.message.name = "message";
    this.message.placeholder = "your message";
    this.message.value = "Hello! What is Server-Sent Events?";
    inputs.append(this.message);
    this.reply = document.createElement("div");
    this.reply.className = "reply";
    element.append(this.reply);
  }

  params() {
    return { message: this.message.value };
  }

  reset() {
    this.reply.replaceChildren();
  }

  event(lane, type, data) {
    if (type === "error") {
      const error = document.createElement("span");
      error.className = "error";
      error.textContent = ` [error: ${data}]`;
      this.reply.append(error);
    } else {
      this.reply.append(data);
    }
  }
}

/** /normal and /conditional-stream: when each lane's data arrived, on one axis. */
class TimelineView {
  constructor(element, inputs, lanes) {
    this.rows = new Map();
    for (const spec of lanes) {
      const row = document.createElement("div");
      row.className = "timeline-row";
      row.innerHTML = '<span class="lane-label"></span><span class="track"></span><span class="when"></span>';
      row.querySelector(".lane-label").textContent = spec.label;
      element.append(row);
      this.rows.set(spec.label, row);
    }
    this.times = [];
  }

  reset() {
    this.times = [];
    for (const row of this.rows.values()) {
      row.querySelector(".track").replaceChildren();
      row.querySelector(".when").textContent = "";
    }
  }

  event(lane, type, data, seconds) {
    const row = this.rows.get(lane.label);
    const mark = document.createElement("i");
    mark.className = `mark ${type}`;
    mark.dataset.t = seconds.toFixed(3);
    mark.title = `${type} at +${seconds.toFixed(3)} s`;
    row.querySelector(".track").append(mark);
    const marks = row.querySelectorAll(".mark");
    const first = Number(marks[0].dataset.t);
    row.querySelector(".when").textContent =
      marks.length === 1 ? `+${first.toFixed(2)} s` : `+${first.toFixed(2)}…${seconds.toFixed(2)} s`;
    this.times.push(seconds);
    // Rescale every mark so that the latest arrival sits at the right end.
    const last = Math.max(...this.times, 0.001);
    for (const each of this.rows.values()) {
      for (const m of each.querySelectorAll(".mark")) m.style.left = `${(100 * m.dataset.t) / last}%`;
    }
  }
}

/* ---------- Cards ---------- */

const server = { tick: null, tickOverride: false };
const MAX_LOG_ROWS = 300;

class Card {
  constructor(spec) {
    this.spec = spec;
    this.lanes = [];
    const root = document.getElementById("card").content.firstElementChild.cloneNode(true);
    this.root = root;
    root.dataset.path = spec.path;
    root.classList.toggle("multi-lane", spec.lanes.length > 1);
    root.querySelector(".method").textContent = spec.method;
    root.querySelector(".path").textContent = spec.path;
    root.querySelector(".section").textContent = `§${spec.section}`;
    root.querySelector(".about").innerHTML = spec.about;
    this.form = root.querySelector("form");
    this.tickInput = this.form.elements.tick;
    this.startButton = root.querySelector(".start");
    this.stopButton = root.querySelector(".stop");
    this.stateBadge = root.querySelector(".state");
    this.log = root.querySelector(".events");
    const View = spec.view;
    this.view = View ? new View(root.querySelector(".view"), root.querySelector(".inputs"), spec.lanes) : null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    this.stopButton.addEventListener("click", () => this.stop());
  }

  /** The tick for the next request: the card's field, else the server's setting. */
  tick() {
    return server.tickOverride && this.tickInput.value !== "" ? Number(this.tickInput.value) : null;
  }

  start() {
    if (this.lanes.some((lane) => !lane.finished)) return; // Start is disabled meanwhile
    this.log.replaceChildren();
    this.view?.reset();
    this.t0 = performance.now();
    const tick = this.tick();
    this.note("", "tick", `${tick ?? server.tick ?? "?"} s${tick === null ? " (the server's)" : ""}`);
    const extra = this.view?.params?.() ?? {};
    this.lanes = this.spec.lanes.map((laneSpec) => {
      const params = new URLSearchParams({ ...laneSpec.params, ...extra });
      if (tick !== null) params.set("tick", String(tick));
      const url = params.size ? `${laneSpec.path}?${params}` : laneSpec.path;
      const lane = new Lane(this, laneSpec.label, `${laneSpec.method} ${url}`);
      this.note(lane.label, "request", lane.request);
      if (laneSpec.reader === "fetch") readWithFetch(lane, url, laneSpec.method);
      else readWithEventSource(lane, url, laneSpec.events);
      return lane;
    });
    this.showState();
  }

  stop() {
    for (const lane of this.lanes) if (!lane.finished) lane.stop();
  }

  seconds() {
    return (performance.now() - this.t0) / 1000;
  }

  laneChanged(lane, detail) {
    this.note(lane.label, lane.state, detail);
    this.showState();
  }

  /** The card's state: that of its liveliest lane (open, then connecting, then error). */
  showState() {
    const states = this.lanes.map((lane) => lane.state);
    const state = ["open", "connecting", "error", "closed"].find((s) => states.includes(s)) ?? "idle";
    this.stateBadge.textContent = state;
    this.stateBadge.dataset.state = state;
    const running = this.lanes.some((lane) => !lane.finished);
    this.startButton.disabled = running;
    this.stopButton.disabled = !running;
  }

  received(lane, type, data) {
    const seconds = this.seconds();
    this.row("event", lane.label, type, data, seconds);
    this.view?.event(lane, type, data, seconds);
  }

  /** A line in the log about the request itself, not an event: what, then details. */
  note(label, what, text) {
    this.row("note", label, what, text, this.seconds());
  }

  row(kind, label, type, data, seconds) {
    const row = document.createElement("li");
    row.className = kind;
    row.dataset.type = type;
    const time = document.createElement("time");
    time.textContent = `+${seconds.toFixed(3)}`;
    time.title = `${new Date().toISOString().slice(11, 23)} UTC`;
    row.append(time);
    if (this.spec.lanes.length > 1) row.append(cell("lane", label));
    row.append(cell("type", type));
    row.append(cell("data", data.length > 160 ? `${data.slice(0, 160)}… (${data.length} characters)` : data));
    this.log.append(row);
    while (this.log.childElementCount > MAX_LOG_ROWS) this.log.firstElementChild.remove();
    this.log.scrollTop = this.log.scrollHeight;
  }
}

function cell(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text;
  return span;
}

/* ---------- The catalogue ---------- */

/**
 * One entry per card. A card needs `path`, `section` and `about`; the rest has
 * defaults (see card() below): one lane, a GET read with EventSource, that
 * listens for the named events `init` and `done` besides `message` and `error`.
 * A new endpoint is a new entry; a new kind of display is a new view class.
 */
const CATALOGUE = [
  { path: "/stream", section: "1.1, 2.2", about: "Five events, <code>data: 0</code> to <code>data: 4</code>, half a tick apart." },
  { path: "/stream-full", section: "1.2", about: "The same five events, with <code>Cache-Control</code> and <code>X-Custom-Header</code>; a background cleanup runs on the server after the body." },
  {
    path: "/normal", section: "2.1",
    about: "No stream: the server works for 5 × 0.5 ticks, then sends all the JSON at once. It starts together with <code>GET /stream</code>, which sends each item as soon as it has it.",
    view: TimelineView,
    lanes: [
      { label: "/normal", path: "/normal", reader: "fetch" },
      { label: "/stream", path: "/stream" },
    ],
  },
  { path: "/stream-headers", section: "4.1", about: "Five events, with the headers a proxy needs to leave a stream alone (<code>X-Accel-Buffering: no</code>)." },
  { path: "/stream-background", section: "4.2", about: "Five events, then a background cleanup on the server." },
  {
    path: "/conditional-stream", section: "4.3",
    about: "Computes all five items first, then answers JSON (<code>stream=false</code>) or SSE (<code>stream=true</code>). Both start together: the events come no sooner than the JSON, because the work was done before the stream began.",
    view: TimelineView,
    lanes: [
      { label: "stream=false", path: "/conditional-stream", params: { stream: "false" }, reader: "fetch" },
      { label: "stream=true", path: "/conditional-stream", params: { stream: "true" } },
    ],
  },
  { path: "/stream-error", section: "5.1", about: "Five events, then an <code>error</code> event with a JSON body." },
  { path: "/stream-robust", section: "5.2", about: "An <code>init</code> event, five messages, then a recoverable <code>error</code> event." },
  { path: "/stream-timeout", section: "5.3", about: "Up to ten events; a step that takes longer than its timeout ends the stream with <code>event: error</code>." },
  { path: "/stream-buffered", section: "6.1", about: "A hundred messages sent in ten batches of ten, each a JSON list." },
  { path: "/stream-heartbeat", section: "6.2", about: "A hundred events a tick apart. The <code>: heartbeat</code> comments keep the connection busy; EventSource never shows comments." },
  { path: "/stream-compressed", section: "6.3", about: "Ten events of 1000 <code>x</code>, gzip-compressed; the browser decodes each as it arrives." },
  {
    method: "POST", path: "/chat-stream", section: "7.1",
    about: "The chat model's reply, one event per token. A POST, so <code>fetch()</code> reads it and the page parses the events.",
    view: ChatView,
    lanes: [{ path: "/chat-stream", method: "POST", reader: "fetch" }],
  },
  { path: "/progress", section: "7.2", about: "101 progress events, then <code>event: done</code>.", view: ProgressView },
  { path: "/logs", section: "7.3", about: "Follows the server's log file like <code>tail -f</code>, one event per new line: <code>ASGI_STREAM_LOG_FILE</code>, or else the server's own access log. Endless: Stop ends it.", view: TailView },
];

function card(entry) {
  const method = entry.method ?? "GET";
  const lanes = (entry.lanes ?? [{ path: entry.path }]).map((lane) => ({
    label: "",
    method,
    reader: "eventsource",
    events: ["init", "done"],
    params: {},
    ...lane,
  }));
  return new Card({ ...entry, method, lanes });
}

async function loadSettings() {
  try {
    const response = await fetch("/settings");
    const settings = await response.json();
    server.tick = settings.tick;
    server.tickOverride = Boolean(settings.tick_override);
  } catch {
    // An older server without /settings: requests use its tick, whatever it is.
  }
  document.getElementById("server-tick").textContent = server.tick === null ? "unknown" : `${server.tick} s`;
  document.getElementById("tick-help").hidden = !server.tickOverride;
  for (const input of document.querySelectorAll("input[name=tick]")) {
    input.disabled = !server.tickOverride;
    input.placeholder = server.tick === null ? "" : String(server.tick);
  }
  document.body.dataset.ready = "true";
}

const main = document.getElementById("cards");
for (const entry of CATALOGUE) main.append(card(entry).root);
loadSettings();
