"""The command line and its tools: ``asgi-stream serve``, ``compare`` and ``soak``.

**The rule for this package.** A module belongs here when a person runs it from
a shell, or when it exists only to serve something that is run that way:
starting servers and worker processes, measuring and comparing responses on
the wire, loading a server with clients. It may import the library and the
third-party packages of the ``serve`` and ``compare`` extras. It names the
catalogue app only by import string, so that any app can take its place, but
may import the catalogue's *data*: ``compare`` reads the differences on
purpose from :mod:`asgi_stream.catalogue.differences`, the one list that the
demo page reads too, and finds the tutorial's FastAPI code as
:mod:`asgi_stream.catalogue.tutorial` does. It does so when it runs, never when
it is imported: importing the catalogue builds its app from the environment,
which ``serve`` sets only later. The library never imports anything from here.

**What is here.**

* :mod:`~asgi_stream.tools.cli`: ``asgi-stream`` and its subcommands.
* :mod:`~asgi_stream.tools.servers` and :mod:`~asgi_stream.tools.workers`:
  uvicorn and hypercorn started through their Python APIs, with graceful
  shutdown, on one socket shared by N processes.
* :mod:`~asgi_stream.tools.process`: start a server in a child process, wait
  until it listens, stop it; the tests and benchmarks use it too.
* :mod:`~asgi_stream.tools.rawhttp`: a small HTTP/1.1 client on raw asyncio
  streams, for clients that must misbehave on purpose.
* :mod:`~asgi_stream.tools.compare` and :mod:`~asgi_stream.tools.measure`:
  our catalogue against the tutorial's FastAPI code, byte by byte.
* :mod:`~asgi_stream.tools.soak`: many clients for many minutes.
* :mod:`~asgi_stream.tools.traced`: any app, traced, by import string.
"""
