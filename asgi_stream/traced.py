"""A traced application for a server to import: ``uvicorn asgi_stream.traced:app``.

A server builds its application from an import string, in each of its worker
processes, so "this application, traced" needs an import string of its own.
This module is it: ``app`` is the application named by
``ASGI_STREAM_TRACE_APP`` (the catalogue by default) wrapped in
:class:`~asgi_stream.tracer.Tracer`, which prints every ASGI message to
standard error (``ASGI_STREAM_TRACE_TEXT=0`` turns that off) and appends JSON
lines to ``ASGI_STREAM_TRACE_JSON`` when it is set::

    ASGI_STREAM_TRACE_APP=examples.lesson1_bare_asgi:app uvicorn asgi_stream.traced:app

``asgi-stream serve --trace`` sets those variables and serves this module's
``app``. Importing the module builds the application, so only a server should.
"""

from .tracer import traced_app_from_environment

app = traced_app_from_environment()
