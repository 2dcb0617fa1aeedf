"""The responses, as Starlette's: for endpoints of a FastAPI or Starlette app.

A Starlette endpoint may return any ASGI app, so every response here works in
one as it is. FastAPI is stricter: it passes through only an instance of
Starlette's ``Response``, and anything else is data to serialize (an
``EventSourceResponse`` then fails with "'async_generator' object is not
iterable"). A return annotation that is not a Starlette ``Response`` is taken
for a response model, too. So this module gives each response class a twin
that is *also* a subclass of the matching Starlette class::

    from asgi_stream.starlette import EventSourceResponse

The twin inherits everything from our class, which comes first in its method
resolution order: what goes on the wire, the disconnect, HEAD, a server's
stop, all as in the rest of this documentation. Starlette's class only adds
``isinstance`` (and what ours lacks: ``set_cookie`` and ``delete_cookie``).

Where FastAPI is installed, the twin of ``EventSourceResponse`` (and of its
subclasses) has FastAPI's ``fastapi.sse.EventSourceResponse`` for its
Starlette class. That class is a marker: given as a route's
``response_class=`` for an endpoint that *yields*, it tells FastAPI to
serialize each item as FastAPI's documentation says (models, dicts and
strings as JSON, FastAPI's own ``ServerSentEvent``) and to make the response
itself, from its own Starlette ``StreamingResponse``; the class given is never
instantiated. So such an endpoint behaves exactly as with FastAPI's class, and
an endpoint that *returns* ``EventSourceResponse(...)`` gets all of ours
(docs/migrating.rst, "Inside a FastAPI or Starlette app").

The library imports no framework, and this module does not either until a
twin is asked for: ``from asgi_stream.starlette import StreamingResponse``
runs the module's ``__getattr__`` (PEP 562), which imports Starlette then, and
makes the class once. :func:`starlette_compatible` makes the twin of any
subclass of ours (your own response class, say).

The names: ``Response``, ``JSONResponse``, ``StreamingResponse``,
``EventSourceResponse``, ``ResumableEventSourceResponse``, ``FileResponse``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

from . import files, resumable, sse
from . import response as ours

__all__ = ["starlette_compatible"]

R = TypeVar("R", bound=ours.Response)

# The classes this module has a twin of, by name.
_TWINS: dict[str, type[ours.Response]] = {
    "Response": ours.Response,
    "JSONResponse": ours.JSONResponse,
    "StreamingResponse": ours.StreamingResponse,
    "EventSourceResponse": sse.EventSourceResponse,
    "ResumableEventSourceResponse": resumable.ResumableEventSourceResponse,
    "FileResponse": files.FileResponse,
}


@functools.cache
def starlette_compatible(cls: type[R]) -> type[R]:
    """A subclass of ``cls`` that is also a Starlette response, made once per class.

    ``cls`` is one of our responses or a subclass; the Starlette base is
    ``FileResponse`` for a file, FastAPI's ``EventSourceResponse`` for an SSE
    one when FastAPI is installed (Starlette's ``StreamingResponse`` when
    not), ``StreamingResponse`` for another streaming one, ``JSONResponse``
    for JSON, else ``Response``. Starlette must be installed
    (:class:`ImportError` if not).
    """
    if not (isinstance(cls, type) and issubclass(cls, ours.Response)):
        raise TypeError(f"starlette_compatible() takes an asgi_stream response class, not {cls!r}")
    from starlette import responses  # here: the library imports no framework until asked

    base: type[Any]
    if issubclass(cls, files.FileResponse):
        base = responses.FileResponse
    elif issubclass(cls, sse.EventSourceResponse):
        base = _fastapi_event_source_response() or responses.StreamingResponse
    elif issubclass(cls, ours.StreamingResponse):
        base = responses.StreamingResponse
    elif issubclass(cls, ours.JSONResponse):
        base = responses.JSONResponse
    else:
        base = responses.Response
    # type() rather than a class statement: the two bases define the same
    # methods differently, and ours are meant to win, which a type checker
    # would question line by line.
    twin: type[R] = type(
        cls.__name__,
        (cls, base),
        {"__module__": __name__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__},
    )
    return twin


def _fastapi_event_source_response() -> type[Any] | None:
    """FastAPI's ``EventSourceResponse`` (a Starlette ``StreamingResponse``), or
    ``None`` without FastAPI: the class FastAPI's routing looks for in a route's
    ``response_class`` before it serializes what the endpoint yields."""
    try:
        from fastapi.sse import EventSourceResponse
    except ImportError:
        return None
    return EventSourceResponse


if TYPE_CHECKING:
    # For a type checker, each twin is our class (which it subclasses).
    # (``import X as X``: the names are this module's, not imported for its own use.)
    from .files import FileResponse as FileResponse
    from .response import JSONResponse as JSONResponse
    from .response import Response as Response
    from .response import StreamingResponse as StreamingResponse
    from .resumable import ResumableEventSourceResponse as ResumableEventSourceResponse
    from .sse import EventSourceResponse as EventSourceResponse
else:

    def __getattr__(name: str) -> Any:
        if name not in _TWINS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return starlette_compatible(_TWINS[name])
