/*
 * The wire view: what the server and the app said to each other, on each card.
 *
 * Theory of operation
 * ===================
 *
 * The page opens one more event stream, GET /wire (see the catalogue's
 * wire.py). Its first event is a `token`: a secret that only this page knows.
 * Every request a card makes carries `?wire=TOKEN.LANE`, LANE being the
 * page's own name for that request. The server traces a request only when its
 * token belongs to an open wire stream, and sends the trace to that stream
 * alone, one `message` event per record, each naming its LANE. So the page
 * sees its own requests, and nobody else's; a request made anywhere else (a
 * curl, another tab) is not traced at all.
 *
 * A record is what the server's tracer wrote down (asgi_stream/tracer.py):
 *   - `scope`: the call itself, the request line and headers;
 *   - `send`: a message from the app to the server, such as
 *     `http.response.start` (status and headers) or `http.response.body`
 *     (its size, `more_body`, and a preview of the bytes);
 *   - `receive`: what `receive()` returned to the app: `http.request` (the
 *     body), or `http.disconnect`, the news that the client has gone;
 *   - `app`: what the app reports between messages: the generator's
 *     `finally`, a background task's start and end;
 *   - `return` or `raise`: the end of the call. A trace ends there.
 *
 * Each record is drawn when it arrives, on the card's clock, between the
 * browser's own events for the same request: you see `send
 * http.response.body`, then the event that it carried arrive. With "beside
 * FastAPI", the card sends the same request to the tutorial's FastAPI code as
 * well (served by the same server under /fastapi) and draws the two traces side
 * by side, marking the differences that are there on purpose; the server sends
 * that list (GET /differences), the one `asgi-stream compare` checks.
 */
"use strict";

const WIRE = {
  token: "", // the secret of this page's wire stream; "" while not connected
  lanes: new Map(), // LANE => the lane whose trace it is, until its trace ends
  count: 0,
  fastapi: { prefix: "/fastapi", unavailable: "not known yet", tick: null },
  differences: [], // the server's list of differences on purpose
};
const OURS = "asgi-stream";
const THEIRS = "FastAPI";
const MAX_WIRE_ROWS = 400;

/** Open the wire stream. EventSource reconnects by itself; each connection has a new token. */
function watchWire(root) {
  const source = new EventSource(`${root}/wire`);
  const show = (state) => {
    document.body.dataset.wire = state;
    document.getElementById("wire-state").textContent = state;
  };
  source.addEventListener("token", (event) => {
    WIRE.token = event.data;
    show("watching");
  });
  source.addEventListener("message", (event) => {
    const record = JSON.parse(event.data);
    const lane = WIRE.lanes.get(record.lane);
    if (lane === undefined) return; // a lane of a card that was started again
    lane.card.wire.record(lane, record);
    if (record.event === "return" || record.event === "raise") WIRE.lanes.delete(record.lane);
  });
  source.addEventListener("dropped", (event) => {
    for (const lane of WIRE.lanes.values()) lane.card.wire.dropped(lane, Number(event.data));
  });
  source.addEventListener("error", () => {
    WIRE.token = ""; // a new connection will bring a new token
    show(source.readyState === EventSource.CLOSED ? "not available" : "reconnecting");
  });
}

/** What a lane's request adds to its query to be traced ("" while the page is not watching). */
function wireParameter(lane) {
  if (!WIRE.token) return "";
  WIRE.count += 1;
  const id = `l${WIRE.count}`;
  WIRE.lanes.set(id, lane);
  return `${WIRE.token}.${id}`;
}

/** Forget lanes whose traces are no longer wanted (their card started again). */
function forgetLanes(lanes) {
  for (const [id, lane] of WIRE.lanes) if (lanes.includes(lane)) WIRE.lanes.delete(id);
}

/** Load whether FastAPI is here, and the differences on purpose. */
async function loadDifferences(root) {
  try {
    const response = await fetch(`${root}/differences`);
    const answer = await response.json();
    WIRE.fastapi = answer.fastapi;
    WIRE.differences = answer.differences;
  } catch {
    WIRE.fastapi = { ...WIRE.fastapi, unavailable: "this server does not say" };
  }
  const { unavailable, tick } = WIRE.fastapi;
  const status = document.getElementById("fastapi-state");
  status.textContent = unavailable
    ? `not available: ${unavailable}.`
    : `served at ${WIRE.fastapi.prefix}, at tick ${tick} s (the tutorial's code reads it once, from ASGI_STREAM_TICK).`;
  for (const input of document.querySelectorAll("input[name=beside]")) {
    input.disabled = Boolean(unavailable);
    input.title = unavailable ?? "run this card's requests against the tutorial's FastAPI code too";
  }
  const general = document.getElementById("differences-elsewhere");
  for (const difference of WIRE.differences.filter((d) => !d.path)) {
    general.append(element("li", "", difference.reason));
  }
}

/** The differences on purpose of one card, by its method and path. */
function knownDifferences(method, path) {
  return WIRE.differences.filter((d) => d.method === method && d.path === path);
}

/** The part of a card that shows the traces: one column per server. */
class WireView {
  constructor(element) {
    this.element = element;
    this.columns = new Map(); // server => its <ol>
    this.known = [];
  }

  /** A fresh start, with one column per server, and the differences to look for. */
  reset(servers, known, seconds) {
    this.seconds = seconds;
    this.known = servers.length > 1 ? known : [];
    this.columns.clear();
    const columns = servers.map((server) => {
      const column = element("section", "wire-column");
      column.dataset.server = server;
      const log = element("ol", "wire-log");
      column.append(element("h3", "", `${server}: ASGI messages`), log);
      this.columns.set(server, log);
      return column;
    });
    const notes = this.known.map((d) => {
      const item = element("li", "", "");
      const what = d.aspects.length ? `differs on purpose in ${d.aspects.join(", ")}` : "not seen on this request";
      item.append(element("b", "", d.probe), ` ${what}: ${d.reason}`);
      return item;
    });
    const list = element("ul", "known");
    list.append(...notes);
    this.element.replaceChildren(...columns, ...(notes.length ? [list] : []));
    this.element.classList.toggle("beside", servers.length > 1);
    if (!WIRE.token) this.element.append(element("p", "off", "The wire is not connected: these requests are not traced."));
  }

  /**
   * One record of a lane's trace, drawn at the time it happened on the card's clock.
   *
   * A record says when it happened on the server's clock for its request,
   * which starts when the server calls the app, and it arrives a little later,
   * through the wire's own connection. When that clock started on the card's
   * clock cannot be known exactly: after the request was sent, by the time it
   * took to reach the app. So a record is drawn at the earliest it can have
   * happened, the time the request was sent plus the server's time. Then a
   * message the app sent is never drawn after the browser event it carried.
   */
  record(lane, record) {
    const at = lane.sentAt + record.time;
    const row = this.row(lane, "wire", record.event, record.type ?? "", summary(record), at);
    row.title = `+${(record.time * 1000).toFixed(1)} ms on the server's clock, since it called the app`;
    if ("more_body" in record) row.dataset.moreBody = String(record.more_body);
    if (record.headers) {
      const headers = element("ul", "headers");
      for (const [name, value] of record.headers) {
        const item = element("li", "", `${name}: ${value}`);
        item.dataset.name = name;
        headers.append(item);
      }
      if (record.event === "scope") {
        const fold = element("details", "");
        fold.append(element("summary", "", `${record.headers.length} request headers`), headers);
        row.append(fold);
      } else {
        row.append(headers);
      }
    }
    if (record.type === "http.response.start") this.mark(lane, row);
  }

  /** Something the browser saw for a lane: an event, or a change of its state. */
  browser(lane, type, data) {
    this.row(lane, "browser", "browser", type, data.length > 80 ? `${data.slice(0, 80)}…` : data);
  }

  dropped(lane, count) {
    this.row(lane, "wire", "dropped", "", `${count} records the page read too slowly for`);
  }

  /** A row in a lane's column, in time order. */
  row(lane, kind, event, type, detail, at = this.seconds()) {
    const log = this.columns.get(lane.server);
    if (log === undefined) return element("li", "", ""); // a lane of an earlier start
    const row = element("li", `wire-row ${kind}`, "");
    row.dataset.event = event;
    row.dataset.type = type;
    row.dataset.t = String(at);
    row.append(element("time", "", `+${at.toFixed(3)}`));
    // Which of a card's requests, when it makes several; the column says which server.
    row.append(element("span", "lane", lane.label.replace(THEIRS, "").replace(OURS, "").trim()));
    row.append(element("span", "what", kind === "browser" ? `browser ${type}` : `${event} ${type}`.trim()));
    row.append(element("span", "detail", detail));
    const before = [...log.children].reverse().find((other) => Number(other.dataset.t) <= at);
    if (before === undefined) log.prepend(row);
    else before.after(row);
    while (log.childElementCount > MAX_WIRE_ROWS) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
    return row;
  }

  /** Mark, in a response's start, the status and headers that differ on purpose. */
  mark(lane, row) {
    for (const difference of this.known) {
      if (difference.note || difference.method !== lane.method) continue;
      for (const aspect of difference.aspects) {
        if (aspect === "status") markDifference(row.querySelector(".detail"), difference);
        if (!aspect.startsWith("header ")) continue;
        const name = aspect.slice("header ".length);
        let item = row.querySelector(`.headers li[data-name="${CSS.escape(name)}"]`);
        if (item === null) {
          item = element("li", "absent", `${name}: (not sent)`);
          item.dataset.name = name;
          row.querySelector(".headers")?.append(item);
        }
        markDifference(item, difference);
      }
    }
  }
}

function markDifference(item, difference) {
  item.classList.add("difference");
  item.title = `differs on purpose: ${difference.reason}`;
}

/** One line for a record, as the tracer's text output says it. */
function summary(record) {
  if (record.event === "scope") {
    const query = record.query_string ? `?${record.query_string}` : "";
    return `${record.method} ${record.path}${query} HTTP/${record.http_version}`;
  }
  if (record.event === "raise") return record.error;
  if (record.event === "app") return record.detail;
  const parts = [];
  if ("status" in record) parts.push(`status=${record.status}`);
  if ("body_size" in record) parts.push(`${record.body_size} B`);
  if ("more_body" in record) parts.push(`more_body=${record.more_body}`);
  if (record.preview) parts.push(record.preview);
  return parts.join(" ");
}

function element(tag, className, text = "") {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text) made.textContent = text;
  return made;
}
