"""The demo page, driven in headless Chromium against a real uvicorn process.

Selenium drives Debian's ``chromium`` through its ``chromedriver`` (both from
apt; ``scripts/test.sh`` installs them where missing, and nothing is fetched
at run time). The server runs the catalogue with a tick of 0.01, so the
tutorial's delays shrink a hundredfold. One page serves the whole module: each
test uses its own card, and the last one saves a screenshot of them all to
``tests/artifacts/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from asgi_stream.catalogue.chat import LocalChatModel
from asgi_stream.catalogue.jobs import TOTAL, progress
from tests.serving import ROOT, ServerProcess, serve

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # needed as root and in containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
TICK = "0.01"

if not (CHROMIUM and CHROMEDRIVER):
    reason = "chromium and chromedriver are needed: bash scripts/test.sh installs them"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)  # CI must run these tests, never skip them
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "app.log"
    path.write_text("a line from before the page was opened\n")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, log_file: Path) -> Iterator[ServerProcess]:
    argv = ["-m", "uvicorn", "asgi_stream.catalogue:app", "--host", "127.0.0.1"]
    env = {"ASGI_STREAM_TICK": TICK, "ASGI_STREAM_LOG_FILE": str(log_file)}
    with serve(argv, tmp_path_factory.mktemp("server"), env=env) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.set_page_load_timeout(15)
        driver.set_script_timeout(15)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def page(browser: webdriver.Chrome, server: ServerProcess) -> webdriver.Chrome:
    browser.get(server.url + "/")
    until(browser, lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    return browser


def until(browser: webdriver.Chrome, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Wait for ``condition()`` to be truthy; on timeout, fail showing the page's text."""
    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.05).until(lambda _: condition())
    except TimeoutException:
        text = browser.find_element(By.TAG_NAME, "body").text
        pytest.fail(f"the page did not get there within {timeout} s; it shows:\n{text}")


def card(page: webdriver.Chrome, path: str) -> WebElement:
    return page.find_element(By.CSS_SELECTOR, f'.card[data-path="{path}"]')


def state(element: WebElement) -> str:
    return element.find_element(By.CSS_SELECTOR, ".state").text.lower()


def events(element: WebElement, kind: str) -> list[WebElement]:
    """The rows of a card's log for events of type ``kind``."""
    return element.find_elements(By.CSS_SELECTOR, f'.events li.event[data-type="{kind}"]')


def run_to_end(page: webdriver.Chrome, path: str, timeout: float = 10.0) -> WebElement:
    """Press Start on a card and wait until its connection is closed."""
    element = card(page, path)
    element.find_element(By.CSS_SELECTOR, ".start").click()
    until(page, lambda: state(element) in {"closed", "error"}, timeout)
    return element


def test_progress_reaches_100_and_shows_done(page: webdriver.Chrome) -> None:
    element = run_to_end(page, "/progress")
    bar = element.find_element(By.CSS_SELECTOR, ".bar")
    assert bar.get_attribute("aria-valuenow") == "100"
    assert "done" in bar.get_attribute("class").split()
    assert element.find_element(By.CSS_SELECTOR, ".progress-label").text.endswith(
        "Processing 100/100: done (Completed)"
    )
    assert len(events(element, "message")) == 101
    assert len(events(element, "done")) == 1
    # The page closed the EventSource after `done`: no reconnection runs it again.
    assert state(element) == "closed"


def test_chat_message_gets_its_reply_token_by_token(page: webdriver.Chrome) -> None:
    message = "Does a token with a newline & a % sign survive?"
    element = card(page, "/chat-stream")
    box = element.find_element(By.CSS_SELECTOR, "input[name=message]")
    box.clear()
    box.send_keys(message)
    element = run_to_end(page, "/chat-stream")

    async def tokens() -> list[str]:
        return [chunk.content async for chunk in LocalChatModel(delay=0).astream(message)]

    expected = asyncio.run(tokens())
    assert state(element) == "closed"
    # The reply's tokens include "\n\n": exact text means multi-line data was joined right.
    reply = element.find_element(By.CSS_SELECTOR, ".reply").get_property("textContent")
    assert reply == "".join(expected)
    assert len(events(element, "message")) == len(expected)


def test_stream_error_shows_the_error_event(page: webdriver.Chrome) -> None:
    element = run_to_end(page, "/stream-error")
    [error] = events(element, "error")
    assert '"code": "GENERATION_ERROR"' in error.text
    data = [row.find_element(By.CSS_SELECTOR, ".data").text for row in events(element, "message")]
    assert data == ["0", "1", "2", "3", "4"]
    # It stands out: not the colour of an ordinary event.
    ordinary = events(element, "message")[0]
    assert error.value_of_css_property("color") != ordinary.value_of_css_property("color")
    assert error.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"


def test_stop_on_logs_ends_the_stream_on_the_server(
    page: webdriver.Chrome, server: ServerProcess, log_file: Path
) -> None:
    process = psutil.Process(server.process.pid)

    def holds_log_file() -> bool:
        return any(Path(f.path) == log_file for f in process.open_files())

    before = process.num_fds()
    element = card(page, "/logs")
    element.find_element(By.CSS_SELECTOR, ".start").click()
    until(page, lambda: state(element) == "open")
    until(page, holds_log_file)  # the server's generator is following the file
    with log_file.open("a") as log:
        log.write("first new line\nsecond new line\n")
    tail = element.find_element(By.CSS_SELECTOR, ".tail")
    until(page, lambda: tail.text == "first new line\nsecond new line")

    element.find_element(By.CSS_SELECTOR, ".stop").click()
    assert state(element) == "closed"
    # The browser closed the connection; the server's generator closed the file,
    # and the socket is gone too.
    until(page, lambda: not holds_log_file() and process.num_fds() <= before)


# Events as the HTML standard's parser reads them. Line ends of all three kinds; a
# field without a colon; one space dropped after the colon, not two; an event with no
# data line is not dispatched, and its type does not leak into the next one; a BOM at
# the start is not part of the first field name; an unfinished event is dropped.
TRICKY_STREAM = (
    "\ufeffdata: one\r\ndata:two\r\n\r\n"
    ": a comment\nevent: error\ndata\n\n"
    "event: typed but empty\n\n"
    "data: x\rdata:  y\r\r"
    "id: 7\nretry: 10\nunknown: field\ndata: 模拟\n\n"
    "data: never finished"
)
TRICKY_EVENTS = [
    ["message", "one\ntwo"],
    ["error", ""],
    ["message", "x\n y"],
    ["message", "模拟"],
]


def test_the_event_stream_parser_reads_any_split(page: webdriver.Chrome) -> None:
    """demo.js parses fetch() streams itself; chunks may split a stream anywhere."""
    splits = [[TRICKY_STREAM]]
    splits += [[TRICKY_STREAM[:i], TRICKY_STREAM[i:]] for i in range(1, len(TRICKY_STREAM))]
    splits.append(list(TRICKY_STREAM))
    results = page.execute_script(
        """
        const parse = (pieces) => {
          const events = [];
          const parser = new EventStreamParser((type, data) => events.push([type, data]));
          const bytes = new TextEncoder();
          const text = new TextDecoder();  // as TextDecoderStream does: drops the BOM
          pieces.forEach((piece, i) =>
            parser.feed(text.decode(bytes.encode(piece), {stream: i < pieces.length - 1})));
          return events;
        };
        return arguments[0].map(parse);
        """,
        splits,
    )
    for pieces, events in zip(splits, results, strict=True):
        assert events == TRICKY_EVENTS, pieces


def log_rows(page: webdriver.Chrome, element: WebElement) -> list[dict[str, str]]:
    """Every row of a card's log, read in one round trip."""
    return page.execute_script(
        """
        return [...arguments[0].querySelectorAll(".events li")].map((row) => ({
          kind: row.className,
          type: row.dataset.type,
          id: row.dataset.id ?? "",
          lane: row.querySelector(".lane")?.textContent ?? "",
          data: row.querySelector(".data").textContent,
        }));
        """,
        element,
    )


def test_a_job_runs_on_between_stop_and_resume(page: webdriver.Chrome) -> None:
    element = card(page, "/jobs")
    start = element.find_element(By.CSS_SELECTOR, ".start")
    assert start.text == "Start job"
    # At this tick the whole job takes about a tenth of a second, less than a
    # WebDriver round trip per event: a script in the page presses Stop as soon
    # as the 20th progress event is shown, as a user would (much later).
    page.execute_async_script(
        """
        const [card, count, done] = arguments;
        const log = card.querySelector(".events");
        new MutationObserver((_, observer) => {
          if (log.querySelectorAll('li.event[data-type="message"]').length < count) return;
          observer.disconnect();
          card.querySelector(".stop").click();
          done();
        }).observe(log, { childList: true });
        card.querySelector(".start").click();
        """,
        element,
        20,
    )
    assert state(element) == "closed"
    assert start.text == "Resume job"
    time.sleep(0.5)  # nobody watches, and the job runs on (at this tick, to its end)
    start.click()
    until(page, lambda: events(element, "done") and state(element) == "closed")
    assert start.text == "Start job"  # the job has ended: Start starts another

    rows = log_rows(page, element)
    shown = [row for row in rows if row["kind"] == "event" and row["lane"].startswith("watch")]
    # Every event of the job exactly once, in order, to the done event...
    assert [row["data"] for row in shown] == [
        *(json.dumps(progress(i)) for i in range(TOTAL + 1)),
        "Completed",
    ]
    assert [row["type"] for row in shown] == ["message"] * (TOTAL + 1) + ["done"]
    assert len({row["id"] for row in shown}) == len(shown)
    # ...the first 20 through the first connection, the rest through the second,
    # which asked for what came after the last id that the first one showed.
    assert [row["lane"] for row in shown] == ["watch 1"] * 20 + ["watch 2"] * (TOTAL - 18)
    requests = [row["data"] for row in rows if row["type"] == "request"]
    [job] = [json.loads(row["data"]) for row in rows if row["type"] == "json"]
    assert requests == [
        "POST /jobs",
        f"GET {job['events']}",
        f"GET {job['events']}?last_event_id={shown[19]['id']}",
    ]
    assert element.find_element(By.CSS_SELECTOR, ".bar").get_attribute("aria-valuenow") == "100"
    watches = element.find_elements(By.CSS_SELECTOR, ".watches li")
    assert [w.text.split(",")[0] for w in watches] == ["watch 1: 20 events", "watch 2: 82 events"]


# The wire view ----------------------------------------------------------------------------


def wire_rows(page: webdriver.Chrome, element: WebElement, server: str) -> list[dict[str, Any]]:
    """Every row of one column of a card's wire view, read in one round trip."""
    return page.execute_script(
        """
        const [card, server] = arguments;
        const column = card.querySelector(`.wire-column[data-server="${server}"]`);
        return [...(column?.querySelectorAll(".wire-row") ?? [])].map((row) => ({
          kind: row.classList.contains("browser") ? "browser" : "wire",
          event: row.dataset.event,
          type: row.dataset.type,
          more_body: row.dataset.moreBody ?? null,
          detail: row.querySelector(".detail").textContent,
          headers: [...row.querySelectorAll(".headers li")].map((item) => ({
            name: item.dataset.name,
            text: item.textContent,
            difference: item.classList.contains("difference"),
          })),
        }));
        """,
        element,
        server,
    )


def ended(page: webdriver.Chrome, element: WebElement, server: str = "asgi-stream") -> bool:
    """Whether the card's trace on ``server`` has come to the app's return."""
    return any(row["event"] == "return" for row in wire_rows(page, element, server))


def watching(page: webdriver.Chrome) -> None:
    body = page.find_element(By.TAG_NAME, "body")
    until(page, lambda: body.get_attribute("data-wire") == "watching")


def test_the_wire_shows_each_message_of_a_stream(page: webdriver.Chrome) -> None:
    watching(page)
    element = run_to_end(page, "/stream")
    until(page, lambda: ended(page, element))
    rows = wire_rows(page, element, "asgi-stream")
    wire = [row for row in rows if row["kind"] == "wire"]
    assert wire[0]["event"] == "scope"
    assert wire[0]["detail"] == "GET /stream HTTP/1.1"  # no token, in the trace or on the page
    sends = [(row["type"], row["more_body"]) for row in wire if row["event"] == "send"]
    assert sends == [
        ("http.response.start", None),
        *[("http.response.body", "true")] * 5,
        ("http.response.body", "false"),
    ]
    bodies = [row["detail"] for row in wire if row["type"] == "http.response.body"]
    assert bodies[0] == "9 B more_body=true b'data: 0\\n\\n'"
    start = next(row for row in wire if row["type"] == "http.response.start")
    assert {
        "name": "content-type",
        "text": "content-type: text/event-stream; charset=utf-8",
        "difference": False,
    } in start["headers"]
    # The browser's events are on the same timeline, in the same column.
    shown = [row["detail"] for row in rows if row["kind"] == "browser" and row["type"] == "message"]
    assert shown == ["0", "1", "2", "3", "4"]
    assert [row["type"] for row in wire if row["event"] == "app"] == ["generator finally"]


def test_stop_shows_the_disconnect_then_the_generators_finally(
    page: webdriver.Chrome, log_file: Path
) -> None:
    watching(page)
    element = card(page, "/logs")
    element.find_element(By.CSS_SELECTOR, ".start").click()
    until(page, lambda: state(element) == "open")
    with log_file.open("a") as log:
        log.write("a line to see on the wire\n")
    until(
        page,
        lambda: "a line to see on the wire" in element.find_element(By.CSS_SELECTOR, ".tail").text,
    )
    element.find_element(By.CSS_SELECTOR, ".stop").click()
    until(page, lambda: ended(page, element))
    steps = [
        (row["event"], row["type"])
        for row in wire_rows(page, element, "asgi-stream")
        if row["event"] in ("receive", "app", "return")
    ]
    assert steps == [
        ("receive", "http.request"),
        ("receive", "http.disconnect"),
        ("app", "generator finally"),
        ("return", ""),
    ]


def test_beside_fastapi_marks_the_connection_header(page: webdriver.Chrome) -> None:
    watching(page)
    element = card(page, "/stream-headers")
    beside = element.find_element(By.CSS_SELECTOR, "input[name=beside]")
    until(page, beside.is_enabled, timeout=30)  # the server imports FastAPI first
    beside.click()
    element.find_element(By.CSS_SELECTOR, ".start").click()
    until(page, lambda: ended(page, element, "asgi-stream") and ended(page, element, "FastAPI"))
    until(page, lambda: state(element) == "closed")

    def start_headers(server: str) -> list[dict[str, Any]]:
        rows = wire_rows(page, element, server)
        return next(row for row in rows if row["type"] == "http.response.start")["headers"]

    theirs, ours = start_headers("FastAPI"), start_headers("asgi-stream")
    assert [h for h in theirs if h["difference"]] == [
        {"name": "connection", "text": "connection: keep-alive", "difference": True}
    ]
    assert [h for h in ours if h["difference"]] == [
        {"name": "connection", "text": "connection: (not sent)", "difference": True}
    ]
    # Both served the same five events, each to its own lane.
    shown = [row for row in log_rows(page, element) if row["type"] == "message"]
    assert sorted(row["lane"] for row in shown) == ["FastAPI"] * 5 + ["asgi-stream"] * 5
    known = element.find_element(By.CSS_SELECTOR, ".wire .known").text
    assert "Connection: keep-alive" in known

    # As in the docs (docs/_static/wire-view.png): every message in view.
    page.set_window_size(1400, 2200)
    page.execute_script(
        """
        const card = arguments[0];
        for (const log of card.querySelectorAll(".wire-log")) log.style.maxHeight = "none";
        card.querySelector(".events").scrollTop = 0;
        card.scrollIntoView();
        """,
        element,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "wire-view.png"
    assert element.screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")


def arrivals(element: WebElement) -> list[list[float]]:
    """A two-lane card's timeline: for each lane, when its data arrived (s since Start)."""
    rows = element.find_elements(By.CSS_SELECTOR, ".timeline-row")
    return [
        [float(m.get_attribute("data-t")) for m in row.find_elements(By.CSS_SELECTOR, ".mark")]
        for row in rows
    ]


def test_timelines_and_a_screenshot(page: webdriver.Chrome, server: ServerProcess) -> None:
    # A slower tick for these two cards' requests only, so that the order is
    # unmistakable: the work takes 5 x 0.5 x 0.4 = 1.0 s before any JSON.
    normal, conditional = card(page, "/normal"), card(page, "/conditional-stream")
    for element in (normal, conditional):
        element.find_element(By.CSS_SELECTOR, "input[name=tick]").send_keys("0.4")
        element.find_element(By.CSS_SELECTOR, ".start").click()
    until(page, lambda: {state(normal), state(conditional)} == {"closed"})
    requests = normal.find_elements(By.CSS_SELECTOR, '.events li.note[data-type="request"] .data')
    assert [r.text for r in requests] == ["GET /normal?tick=0.4", "GET /stream?tick=0.4"]

    # /stream's events arrive while /normal is still working...
    [json_arrived], stream_events = arrivals(normal)
    assert len(stream_events) == 5
    assert json_arrived >= 0.9
    assert stream_events[0] < json_arrived - 0.5
    # ...but a stream that starts after the work is done is no sooner than the JSON.
    [json_arrived], stream_events = arrivals(conditional)
    assert len(stream_events) == 5
    assert json_arrived >= 0.9
    assert stream_events[0] >= 0.9

    run_to_end(page, "/stream-robust")

    # Nothing came from another host, and the page logged no error.
    resources = page.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert all(url.startswith(server.url + "/") for url in resources), resources
    errors = [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []

    height = page.execute_script("window.scrollTo(0, 0); return document.body.scrollHeight")
    page.set_window_size(1400, min(height + 100, 6000))
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "demo-page.png"
    assert page.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {screenshot}")


def test_a_download_stops_and_resumes_with_a_range(page: webdriver.Chrome) -> None:
    element = card(page, "/download/sample.bin")
    start = element.find_element(By.CSS_SELECTOR, ".start")
    tick = element.find_element(By.CSS_SELECTOR, "input[name=tick]")
    tick.send_keys("1")  # a read a second: Stop comes long before the end
    start.click()
    label = element.find_element(By.CSS_SELECTOR, ".progress-label")
    until(page, lambda: label.text.split(" ")[0].isdigit() and int(label.text.split(" ")[0]) > 0)
    element.find_element(By.CSS_SELECTOR, ".stop").click()
    until(page, lambda: start.text == "Resume" and not start.get_attribute("disabled"))
    tick.clear()  # the server's tick: as fast as the page may go
    start.click()
    until(page, lambda: "verified" in label.text, timeout=30)
    notes = [row.text for row in element.find_elements(By.CSS_SELECTOR, ".events li.note")]
    assert any("stopped at byte" in note for note in notes)
    assert any("Range: bytes=" in note and "If-Range" in note for note in notes)
    opened = element.find_elements(By.CSS_SELECTOR, '.events li.note[data-type="open"]')
    statuses = [row.find_element(By.CSS_SELECTOR, ".data").text.split(" ")[0] for row in opened]
    assert statuses == ["200", "206"]
