"""The catalogue app: the tutorial's fifteen endpoints, jobs, chat and the demo page.

**The rule for this package.** A module belongs here when it is part of one
application built *on* the library: its endpoints, the settings they read, the
stores and models behind them, the page that shows them. It may import the
library (``asgi_stream.*``) and third-party packages that the app's extras
install; the library never imports it back. The tools name the app only as
an import string (``"asgi_stream.catalogue:app"``), and import only its data
(:mod:`~asgi_stream.catalogue.differences`, where the tutorial's code is).

**What is here.**

* :mod:`~asgi_stream.catalogue.endpoints`: the fifteen endpoints, ``Settings``
  and ``create_app``; ``uvicorn asgi_stream.catalogue:app`` serves them.
* :mod:`~asgi_stream.catalogue.jobs`: work that outlives a connection, read
  back through resumable SSE.
* :mod:`~asgi_stream.catalogue.chat`: the chat models behind ``/chat-stream``.
* :mod:`~asgi_stream.catalogue.downloads`: a file to download and resume.
* :mod:`~asgi_stream.catalogue.demo` and ``static/``: the demo page.
* :mod:`~asgi_stream.catalogue.wire`: each request's ASGI messages, live, for
  the page that made it; :mod:`~asgi_stream.catalogue.tutorial`: the
  tutorial's FastAPI code, served beside ours under ``/fastapi``;
  :mod:`~asgi_stream.catalogue.differences`: where the two differ on purpose.
* :mod:`~asgi_stream.catalogue.accesslog` and
  :mod:`~asgi_stream.catalogue.logfollow`: the log that ``/logs`` follows, and
  the follower; :mod:`~asgi_stream.catalogue.params`: query parameters read
  as FastAPI reads them, with its 422.
"""

from .endpoints import MAX_TICK, MIN_TICK, Catalogue, Settings, app, create_app

__all__ = ["MAX_TICK", "MIN_TICK", "Catalogue", "Settings", "app", "create_app"]
