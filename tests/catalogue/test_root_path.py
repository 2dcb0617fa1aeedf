"""The catalogue behind a proxy at a prefix (``--root-path /api``), under uvicorn and hypercorn.

The two servers expect different proxies. uvicorn expects one that takes the
prefix off (``proxy_pass http://app/;``) and puts the root path back in front
of ``scope["path"]``: here a :func:`~tests.prefix_proxy.prefix_proxy` stands
in front of it. hypercorn passes the path on as the client sent it, prefix
included, so the client talks to it directly. Either way the client asks for
``/api/...``, and every route, the demo page's files and the URLs the page and
the jobs API hand out must work there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.catalogue.test_browser import browser, events, run_to_end, until
from tests.prefix_proxy import prefix_proxy
from tests.serving import serve

pytestmark = pytest.mark.server
__all__ = ["browser"]  # a fixture, shared with the browser tests of the page

PREFIX = "/api"
APP = "asgi_stream.catalogue:app"
SERVERS = {
    "uvicorn": ["-m", "uvicorn", APP, "--host", "127.0.0.1", "--root-path", PREFIX],
    "hypercorn": ["-m", "hypercorn", APP, "--bind", "127.0.0.1:{port}", "--root-path", PREFIX],
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The public URL of the app: ``http://host:port/api``."""
    argv = SERVERS[request.param]
    with serve(
        argv, tmp_path_factory.mktemp(request.param), env={"ASGI_STREAM_TICK": "0.001"}
    ) as s:
        if request.param == "uvicorn":
            with prefix_proxy(PREFIX, s.port) as proxy:
                yield proxy + PREFIX
        else:
            yield s.url + PREFIX


def test_a_route_answers_under_the_prefix(site: str) -> None:
    response = httpx.get(site + "/normal", timeout=5)
    assert response.status_code == 200
    assert len(response.json()["data"]) == 5


def test_the_demo_page_and_every_link_on_it_resolve(site: str) -> None:
    page_url = site + "/"
    page = httpx.get(page_url, timeout=5)
    assert page.status_code == 200
    links = re.findall(r'(?:href|src)="([^"]+)"', page.text)
    assert {"static/icon.svg", "static/demo.css", "static/demo.js"} <= set(links)
    for link in links:
        url = urljoin(page_url, link)
        assert url.startswith(site + "/static/")
        assert httpx.get(url, timeout=5).status_code == 200, url


def test_the_bare_prefix_redirects_to_the_page(site: str) -> None:
    response = httpx.get(site, timeout=5, follow_redirects=True)
    assert response.status_code == 200
    assert str(response.url) == site + "/"
    assert "<title>" in response.text


def test_the_paths_the_script_builds_resolve(site: str) -> None:
    # demo.js: ROOT is the directory above the script, and every request is ROOT + path.
    script = urljoin(site + "/", "static/demo.js")
    root = urljoin(script, "..").rstrip("/")
    assert root == site
    assert httpx.get(root + "/settings", timeout=5).status_code == 200
    with httpx.stream("GET", root + "/stream", timeout=5) as response:
        assert response.status_code == 200
        assert b"data: 4" in response.read()


def test_a_job_hands_out_an_events_url_under_the_prefix(site: str) -> None:
    job = httpx.post(site + "/jobs", timeout=5)
    assert job.status_code == 202
    events = job.json()["events"]
    assert events.startswith(PREFIX + "/jobs/")
    origin = site[: -len(PREFIX)]
    with httpx.stream("GET", origin + events, timeout=10) as response:
        assert response.status_code == 200
        assert b"event: done" in response.read()


def test_no_script_sends_a_request_to_a_bare_absolute_path() -> None:
    static = Path(__file__).parents[2] / "asgi_stream/catalogue/static"
    for script in static.glob("*.js"):
        # fetch("/x"), new EventSource("/x"): either would leave a proxy's prefix out.
        assert not re.search(r"""(fetch|EventSource)\(\s*["'`]/""", script.read_text()), script


@pytest.mark.browser
def test_the_page_runs_a_stream_in_a_browser(site: str, browser: webdriver.Chrome) -> None:
    browser.get(site + "/")
    until(browser, lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    element = run_to_end(browser, "/stream")
    data = [row.find_element(By.CSS_SELECTOR, ".data").text for row in events(element, "message")]
    assert data == ["0", "1", "2", "3", "4"]
    # The tick came from ROOT + /settings, not from a /settings outside the prefix.
    assert browser.find_element(By.ID, "server-tick").text == "0.001 s"
