"""The demo page: the catalogue, live in a browser.

Theory of operation
===================

Server-Sent Events were made for browsers, and a browser is where most people
first watch a stream arrive. So the catalogue server also serves one page that
has a card for each endpoint: press Start and the events appear as they come,
each with its time and type, beside the state of the connection.

The page is three static files in ``asgi_stream/static/``, shipped as package
data: ``index.html``, ``demo.css`` and ``demo.js``. There is no build step and
nothing from another host. That rule is not only kept but enforced: every file
goes out with ``Content-Security-Policy: default-src 'self'``, so the browser
itself refuses a script, a stylesheet, a font or a request to any other origin,
and inline scripts too. :func:`install` adds two routes to a router:

* ``GET /``: the page;
* ``GET /static/{name}``: its stylesheet and script.

The files are read once, when the routes are installed, so a request never
touches the disk, and only the files found there can ever be served: a name
such as ``..`` is a 404, not a path.

Every URL the page uses is relative to where it was served: ``index.html``
links ``static/demo.css``, and ``demo.js`` builds each request from the
directory above its own URL. So behind a proxy at a prefix (``--root-path
/api``, the page at ``/api/``) every request keeps the prefix.

How the page talks to the server is the lesson, and ``demo.js`` explains it at
length. In short: a GET stream uses ``EventSource``, the browser's own SSE
client, and the Stop button calls ``close()``, which closes the connection. The
server sees ``http.disconnect`` and stops the generator (see
:mod:`asgi_stream.response`). ``EventSource`` cannot send a POST, so
``POST /chat-stream`` is read with ``fetch()`` and the page parses the event
stream itself; Stop aborts the fetch. ``EventSource`` also reconnects when a
stream ends, which would run a finished stream again forever, so the page
closes it at the end instead. The jobs card is the exception: a job's events
are resumable (see :mod:`asgi_stream.resumable`), so there ``EventSource`` may
reconnect, and after a Stop the page resumes with ``?last_event_id=``.
"""

from __future__ import annotations

from importlib import resources

from ..exceptions import HTTPException
from ..request import Request
from ..response import Response
from ..routing import Router

__all__ = ["install"]

_MEDIA_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}

# Sent with every file of the page. no-cache: the browser may keep a copy but
# asks again each time, so a newer version of the package shows at once.
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
}


def _load_static() -> dict[str, Response]:
    """One ready response per file in ``static/``, by file name."""
    responses = {}
    for entry in (resources.files(__package__) / "static").iterdir():
        media_type = _MEDIA_TYPES.get("." + entry.name.rpartition(".")[2])
        if media_type is not None and entry.is_file():
            body = entry.read_bytes()
            responses[entry.name] = Response(body, headers=_HEADERS, media_type=media_type)
    return responses


def install(router: Router) -> None:
    """Serve the demo page at ``GET /`` and its files at ``GET /static/{name}``."""
    files = _load_static()
    page = files["index.html"]

    async def index(request: Request) -> Response:
        return page

    async def static(request: Request) -> Response:
        response = files.get(request.path_params["name"])
        if response is None:
            raise HTTPException(404, "Not Found")
        return response

    router.add("/", index)
    router.add("/static/{name}", static)
