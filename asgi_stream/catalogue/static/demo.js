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
 * The job card is the exception that shows why EventSource reconnects at all.
 * A job runs on the server whether anyone watches or not, and its events
 * stream is resumable: every event has an `id`, and a request that says the
 * last id it saw gets only what came after. So its lane lets EventSource
 * reconnect by itself, which sends that id in a Last-Event-ID header. A page
 * cannot set that header, though, so after Stop, Start again opens a new
 * EventSource with the id in the query string, `?last_event_id=`.
 *
 * fetch() is for everything else: a POST (EventSource can only GET) and
 * plain JSON. Its body is a ReadableStream of bytes, as they arrive. For an
 * event stream we decode the bytes as UTF-8 (TextDecoderStream keeps a
 * character split between two chunks whole) and parse the SSE format
 * ourselves, exactly as EventSource would: see EventStreamParser. Stop calls
 * AbortController.abort(), which closes the connection too.
 */
"use strict";

/**
 * Where the app lives. Behind a proxy at a prefix, say /api, this page is
 * /api/ and this script /api/static/demo.js, so the app's own paths are
 * ROOT + path, never a bare "/path" (which would leave the prefix out).
 */
const ROOT = new URL("..", document.currentScript.src).pathname.slice(0, -1);

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
  constructor(card, label, request, { method = "GET", route = "", server = OURS } = {}) {
    this.card = card;
    this.label = label; // shown in a two-lane card's log
    this.request = request; // "GET /progress?tick=0.01"
    this.method = method;
    this.route = route; // the endpoint's path, "/progress", whichever server serves it
    this.server = server; // OURS, or THEIRS: the tutorial's FastAPI code (see wire.js)
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

  receive(type, data, id = "") {
    if (!this.finished) this.card.received(this, type, data, id);
  }
}

/** The event types after which a stream has nothing more to say. */
const FINAL_EVENTS = new Set(["done", "failed"]);

/**
 * Reads a GET event stream with EventSource. `events` are the named events to
 * listen for; a `resumable` stream is left to reconnect by itself.
 */
function readWithEventSource(lane, url, { events, resumable = false }) {
  const source = new EventSource(url);
  let opened = false;
  let lastEventId = "";
  const end = (state, detail) => {
    source.close(); // no reconnection, and the connection is closed now
    lane.setState(state, detail);
  };
  const deliver = (event) => {
    lastEventId = event.lastEventId;
    lane.receive(event.type, event.data, event.lastEventId);
    if (FINAL_EVENTS.has(event.type)) end("closed", `closed by the page after \`${event.type}\``);
  };
  source.onopen = () => {
    opened = true;
    lane.setState("open");
  };
  source.onmessage = deliver;
  for (const type of events) source.addEventListener(type, deliver);
  source.addEventListener("error", (event) => {
    if (event instanceof MessageEvent) deliver(event); // the server's `event: error`
    else if (resumable && source.readyState === EventSource.CONNECTING) {
      const header = lastEventId ? `Last-Event-ID: ${lastEventId}` : "no Last-Event-ID";
      lane.setState("connecting", `the connection broke: EventSource reconnects, with ${header}`);
    } else if (opened) end("closed", "the stream ended (EventSource would reconnect)");
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
      const parser = new EventStreamParser((type, data, id) => lane.receive(type, data, id));
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

/** /jobs: the job's progress, and which events each watch (connection) showed, and when. */
class JobView extends ProgressView {
  constructor(element) {
    super(element);
    this.list = document.createElement("ol");
    this.list.className = "watches";
    element.append(this.list);
    this.watches = new Map(); // lane => { item, first, count, since }
  }

  reset() {
    super.reset();
    this.bar.classList.remove("failed");
    this.list.replaceChildren();
    this.watches.clear();
  }

  event(lane, type, data, seconds, id) {
    if (type === "failed") {
      this.bar.classList.add("failed");
      this.label.textContent += `: failed (${data})`;
    } else {
      super.event(lane, type, data);
    }
    if (!id) return; // the POST's answer, or a `reset`, whose empty id clears the last one
    let watch = this.watches.get(lane);
    if (watch === undefined) {
      watch = { item: document.createElement("li"), first: id, count: 0, since: seconds };
      this.list.append(watch.item);
      this.watches.set(lane, watch);
    }
    watch.count += 1;
    watch.item.textContent =
      `${lane.label}: ${watch.count} event${watch.count === 1 ? "" : "s"}, ids ${watch.first} to ${id},` +
      ` from +${watch.since.toFixed(3)} to +${seconds.toFixed(3)} s`;
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
    root.classList.toggle("wide", Boolean(spec.wide));
    root.querySelector(".method").textContent = spec.method;
    root.querySelector(".path").textContent = spec.path;
    root.querySelector(".section").textContent = spec.section ? `§${spec.section}` : "";
    root.querySelector(".about").innerHTML = spec.about;
    this.form = root.querySelector("form");
    if (spec.tick === false) root.querySelector("label.tick").remove(); // the server's tick only
    this.tickInput = this.form.elements.tick ?? null;
    this.startButton = root.querySelector(".start");
    this.stopButton = root.querySelector(".stop");
    this.stateBadge = root.querySelector(".state");
    this.log = root.querySelector(".events");
    const View = spec.view;
    this.view = View ? new View(root.querySelector(".view"), root.querySelector(".inputs"), spec.lanes) : null;
    this.wire = new WireView(root.querySelector(".wire"));
    this.beside = spec.beside === false ? null : root.querySelector("input[name=beside]");
    if (this.beside === null) root.querySelector("label.beside").remove(); // FastAPI has no such endpoint
    this.beside?.addEventListener("change", () => root.classList.toggle("wide", Boolean(spec.wide) || this.beside.checked));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    this.stopButton.addEventListener("click", () => this.stop());
  }

  /** The tick for the next request: the card's field, else the server's setting. */
  tick() {
    // The tutorial's code has one tick, its own: beside it, we run at its pace.
    if (this.besideFastAPI) return server.tickOverride ? WIRE.fastapi.tick : null;
    const input = this.tickInput;
    return server.tickOverride && input && input.value !== "" ? Number(input.value) : null;
  }

  get running() {
    return this.lanes.some((lane) => !lane.finished);
  }

  /** Whether Start also sends each request to the tutorial's FastAPI code. */
  get besideFastAPI() {
    return Boolean(this.beside?.checked && !this.beside.disabled);
  }

  start() {
    if (this.running) return; // Start is disabled meanwhile
    this.begin();
    const extra = this.view?.params?.() ?? {};
    for (const laneSpec of this.spec.lanes) {
      const params = { ...laneSpec.params, ...extra };
      if (!this.besideFastAPI) {
        this.open(laneSpec, params);
        continue;
      }
      this.open(laneSpec, params, laneSpec.path, laneSpec.label || OURS);
      const path = ROOT + WIRE.fastapi.prefix + laneSpec.path.slice(ROOT.length);
      this.open(laneSpec, params, path, `${THEIRS} ${laneSpec.label}`.trim(), THEIRS);
    }
  }

  /** A fresh start: no lanes, an empty log and view, and the clock at zero. */
  begin() {
    forgetLanes(this.lanes);
    this.lanes = [];
    this.log.replaceChildren();
    this.view?.reset();
    const servers = this.besideFastAPI ? [OURS, THEIRS] : [OURS];
    this.wire.reset(servers, knownDifferences(this.spec.method, this.spec.path), () => this.seconds());
    this.root.classList.toggle("multi-lane", this.spec.lanes.length > 1 || servers.length > 1);
    this.t0 = performance.now();
    const tick = this.tick();
    this.note("", "tick", `${tick ?? server.tick ?? "?"} s${tick === null ? " (the server's)" : ""}`);
  }

  /** Sends one lane's request; returns the lane, whose `done` settles when a fetch ends. */
  open(laneSpec, params, path = laneSpec.path, label = laneSpec.label, server = OURS) {
    const query = new URLSearchParams(params);
    const tick = server === OURS ? this.tick() : null; // the tutorial's code takes no ?tick=
    if (tick !== null) query.set("tick", String(tick));
    const url = query.size ? `${path}?${query}` : path;
    const route = laneSpec.path.slice(ROOT.length);
    const lane = new Lane(this, label, `${laneSpec.method} ${url}`, { method: laneSpec.method, route, server });
    lane.sentAt = this.seconds(); // the wire view draws the server's records from here
    this.lanes.push(lane);
    this.note(lane.label, "request", lane.request);
    // The page's secret goes on the wire, but not in the log: see wire.js.
    const wire = wireParameter(lane);
    if (wire) query.set("wire", wire);
    const sent = query.size ? `${path}?${query}` : path;
    if (laneSpec.reader === "fetch") lane.done = readWithFetch(lane, sent, laneSpec.method);
    else readWithEventSource(lane, sent, laneSpec);
    this.showState();
    return lane;
  }

  stop() {
    for (const lane of this.lanes) if (!lane.finished) lane.stop();
  }

  seconds() {
    return (performance.now() - this.t0) / 1000;
  }

  laneChanged(lane, detail) {
    this.note(lane.label, lane.state, detail);
    this.wire.browser(lane, lane.state, detail);
    this.showState();
  }

  /** The card's state: that of its liveliest lane (open, then connecting, then error). */
  showState() {
    const states = this.lanes.map((lane) => lane.state);
    const state = ["open", "connecting", "error", "closed"].find((s) => states.includes(s)) ?? "idle";
    this.stateBadge.textContent = state;
    this.stateBadge.dataset.state = state;
    this.startButton.disabled = this.running;
    this.stopButton.disabled = !this.running;
  }

  received(lane, type, data, id) {
    const seconds = this.seconds();
    const row = this.row("event", lane.label, type, data, seconds);
    if (id) {
      row.dataset.id = id;
      row.title = `id: ${id}`;
    }
    this.wire.browser(lane, type, data);
    if (lane.server === OURS) this.view?.event(lane, type, data, seconds, id);
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
    if (this.root.classList.contains("multi-lane")) row.append(cell("lane", label));
    row.append(cell("type", type));
    row.append(cell("data", data.length > 160 ? `${data.slice(0, 160)}… (${data.length} characters)` : data));
    this.log.append(row);
    while (this.log.childElementCount > MAX_LOG_ROWS) this.log.firstElementChild.remove();
    this.log.scrollTop = this.log.scrollHeight;
    return row;
  }
}

/**
 * POST /jobs, then GET /jobs/{id}/events: a job that outlives whoever watches it.
 *
 * Start job sends the POST, whose answer names the job's events; a lane called
 * a *watch* reads them with EventSource. Stop closes that connection, and the
 * job runs on. Start again (now "Resume job") opens a new watch that asks for
 * what came after the last event shown: every event appears once, across the
 * watches. Once the job's final event is shown, Start starts another job.
 */
class JobCard extends Card {
  constructor(spec) {
    super(spec);
    [this.post, this.watch] = spec.lanes;
    this.job = null; // { events, lastEventId, watches }: from the POST's answer to the job's end
    this.showState();
  }

  async start() {
    if (this.running) return;
    if (this.job === null) {
      this.begin();
      await this.open(this.post, {}).done;
      if (this.job === null) return; // refused, failed or stopped: the log says which
    }
    const { events, lastEventId } = this.job;
    this.job.watches += 1;
    const params = lastEventId ? { last_event_id: lastEventId } : {};
    this.open(this.watch, params, events, `${this.watch.label} ${this.job.watches}`);
  }

  stop() {
    super.stop();
    if (this.job === null) return;
    const id = this.job.lastEventId;
    this.note("", "unwatched", `the job runs on; Resume asks for ${id ? `what follows id ${id}` : "all"}`);
  }

  received(lane, type, data, id) {
    super.received(lane, type, data, id);
    if (lane.label === this.post.label) {
      if (type === "json") this.job = { events: JSON.parse(data).events, lastEventId: "", watches: 0 };
    } else {
      this.job.lastEventId = id;
      if (FINAL_EVENTS.has(type)) this.job.ended = type;
    }
  }

  laneChanged(lane, detail) {
    super.laneChanged(lane, detail);
    if (this.job === null || lane.label === this.post.label) return;
    // From now on, Start starts a new job.
    if (this.job.ended) this.forget(`ended with \`${this.job.ended}\``);
    else if (lane.state === "error") this.forget("cannot be read");
  }

  forget(reason) {
    this.job = null;
    this.note("", "job", reason);
    this.showState();
  }

  showState() {
    super.showState();
    this.startButton.textContent = this.job === null ? "Start job" : "Resume job";
  }
}

/**
 * GET /download/sample.bin: a file download that stops and resumes.
 *
 * The body is read with fetch() in pieces, a little at a time (the reading is
 * paced, so that there is time to press Stop: TCP's flow control slows the
 * server down to our pace). Stop aborts the fetch, which closes the
 * connection; the server's read of the file stops with it. Resume asks for
 * the rest only: `Range: bytes=N-` with `If-Range: <the ETag>`, so a 206 is
 * the missing part of the same file, and a 200 (the file changed) the whole
 * file again. At the end the page checks the SHA-256 of what it put together
 * against the server's.
 */
class DownloadCard extends Card {
  constructor(spec) {
    super(spec);
    this.forget();
    this.showState();
  }

  forget() {
    this.parts = [];
    this.received = 0;
    this.etag = null;
    this.total = null;
  }

  async start() {
    if (this.running) return;
    if (this.received === 0) {
      this.begin();
      this.forget();
      const listing = await (await fetch(`${ROOT}/download`)).json();
      this.expected = listing.files[0];
    }
    const lane = new Lane(this, "", `GET ${this.spec.path}`, { route: "/download/{name}" });
    this.lanes.push(lane);
    const headers = {};
    if (this.received > 0) {
      headers.Range = `bytes=${this.received}-`;
      headers["If-Range"] = this.etag;
    }
    this.note("", "request", `GET ${this.spec.path}${headers.Range ? ` Range: ${headers.Range}, If-Range: ${this.etag}` : ""}`);
    this.showState();
    lane.controller = new AbortController();
    lane.stop = () => lane.controller.abort();
    try {
      const response = await fetch(this.spec.path, { headers, signal: lane.controller.signal });
      if (response.status === 200) this.forget(); // the whole file: start again from byte 0
      else if (response.status !== 206) throw new Error(`HTTP ${response.status}`);
      this.etag = response.headers.get("ETag");
      this.total = this.received + Number(response.headers.get("Content-Length"));
      lane.setState("open", `${response.status} ${response.headers.get("Content-Range") ?? ""}`.trim());
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.parts.push(value);
        this.received += value.length;
        this.view.show(this.received, this.total);
        await new Promise((resolve) => setTimeout(resolve, this.pace));
      }
      lane.setState("closed", `${this.received} bytes`);
      await this.check();
    } catch (error) {
      const stopped = error.name === "AbortError";
      lane.setState(stopped ? "closed" : "error", stopped ? `stopped at byte ${this.received}` : String(error));
    }
    this.showState();
  }

  /** The milliseconds between two reads: the card's tick, else the server's, as a pace. */
  get pace() {
    return 1000 * (this.tick() ?? server.tick ?? 0.01);
  }

  async check() {
    const data = await new Blob(this.parts).arrayBuffer();
    const digest = crypto.subtle ? await crypto.subtle.digest("SHA-256", data) : null;
    const hex = digest ? [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("") : "";
    const same = hex === this.expected.sha256 && data.byteLength === this.expected.size;
    this.note("", same ? "verified" : "corrupt", `${data.byteLength} bytes, SHA-256 ${hex || "unavailable"}`);
    this.view.done(same, URL.createObjectURL(new Blob(this.parts)));
    this.forget();
  }

  showState() {
    super.showState();
    this.startButton.textContent = this.received > 0 ? "Resume" : "Start";
  }
}

/** A progress bar in bytes, and a link to the finished file. */
class DownloadView {
  constructor(element) {
    this.element = element;
    this.element.innerHTML = '<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0"><div class="fill"></div></div><p class="progress-label"></p><a class="saved" hidden download="sample.bin">Save the file</a>';
    this.bar = element.querySelector(".bar");
    this.fill = element.querySelector(".fill");
    this.label = element.querySelector(".progress-label");
    this.link = element.querySelector(".saved");
  }

  reset() {
    this.show(0, null);
    this.link.hidden = true;
    this.bar.classList.remove("done");
  }

  show(received, total) {
    const percentage = total ? Math.floor((100 * received) / total) : 0;
    this.fill.style.width = `${percentage}%`;
    this.bar.setAttribute("aria-valuenow", String(percentage));
    this.label.textContent = total ? `${received} of ${total} bytes` : "";
  }

  done(verified, url) {
    this.bar.classList.toggle("done", verified);
    this.label.textContent += verified ? ": verified (SHA-256)" : ": corrupt";
    this.link.href = url;
    this.link.hidden = false;
  }

  event() {}
}

function cell(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text;
  return span;
}

/* ---------- The catalogue ---------- */

/**
 * One entry per card. A card needs `path` and `about`, and `section` when it
 * comes from the tutorial; the rest has defaults (see card() below): one
 * lane, a GET read with EventSource, that listens for the named events `init`
 * and `done` besides `message` and `error`, and a tick field (`tick: false`
 * leaves it out); `wide: true` gives it two columns of the grid; `beside:
 * false` leaves out "beside FastAPI", for an endpoint the tutorial has not. A new
 * endpoint is a new entry; a new kind of display is a new view class;
 * requests that follow from each other are a Card subclass (`card`).
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
  {
    method: "POST", path: "/jobs",
    about: "Starts a job on the server: the /progress events, kept in an event log. <code>GET /jobs/{id}/events</code> streams them, each with an <code>id</code>. Stop, wait, Resume: the job ran on meanwhile, and the new connection gets what came after the last id shown (<code>?last_event_id=</code>), no gap and no duplicate. Jobs run at the server's tick.",
    card: JobCard,
    view: JobView,
    tick: false,
    beside: false,
    wide: true,
    lanes: [
      { label: "job", path: "/jobs", reader: "fetch" },
      { label: "watch", method: "GET", events: ["done", "failed", "reset"], resumable: true },
    ],
  },
  {
    path: "/download/sample.bin",
    about: "A file download: <code>FileResponse</code> with <code>ETag</code> and <code>Accept-Ranges</code>. The page reads it a little at a time (one read per tick). Stop closes the connection; Resume asks for the rest only, with <code>Range: bytes=N-</code> and <code>If-Range</code>, and gets a 206. At the end the page checks the file's SHA-256.",
    card: DownloadCard,
    view: DownloadView,
    beside: false,
    lanes: [{ path: "/download/sample.bin", reader: "fetch" }],
  },
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
    path: ROOT + lane.path,
  }));
  const CardClass = entry.card ?? Card;
  return new CardClass({ ...entry, method, lanes });
}

async function loadSettings() {
  try {
    const response = await fetch(`${ROOT}/settings`);
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
loadDifferences(ROOT);
watchWire(ROOT);
