"""asgi-stream: HTTP streaming and Server-Sent Events on raw ASGI.

**The rule for this package.** A module directly in ``asgi_stream/`` is part of
the library: responses, SSE, and the pieces a streaming endpoint is built
from. It needs only the standard library (an optional backend such as Redis is
imported when it is first used, never at import time), and it never imports the
catalogue app (:mod:`asgi_stream.catalogue`) or the tools
(:mod:`asgi_stream.tools`), which are built on it. ``tests/test_layers.py``
holds it to that.

**The public API** is every name in a library module's ``__all__``, and each one
is importable from here: ``from asgi_stream import StreamingResponse``.

Start reading at :mod:`asgi_stream.response`.
"""

from .background import BackgroundTask, BackgroundTasks
from .broadcast import Broadcast, Subscription
from .coalesce import HEARTBEAT
from .compression import GzipEncoder, accepts_gzip, gzip_response, parse_accept_encoding
from .concurrency import (
    MAX_THREADS,
    aiterate,
    close_iterator,
    is_async_callable,
    iterate_in_threadpool,
    run_in_threadpool,
)
from .datastructures import URL, Address, FormData, QueryParams, State, URLPath
from .eventlog import MemoryEventLog, open_event_log
from .eventlog_base import DEFAULT_MAXLEN, Event, EventIDNotFound, EventLog
from .exceptions import ClientDisconnect, HTTPException, validation_error
from .headers import (
    CONNECTION_SPECIFIC,
    ConnectionHeaderWarning,
    Headers,
    HeadersInput,
    MutableHeaders,
    encode_header,
    encode_response_headers,
    is_token,
)
from .importing import import_object
from .redis_eventlog import RedisEventLog  # redis itself is imported when a RedisEventLog is made
from .request import MAX_BODY_SIZE, MAX_QUERY_SIZE, Request, route_path
from .response import (
    END_OF_BODY,
    Content,
    ContentEncoder,
    JSONResponse,
    Response,
    StreamingResponse,
)
from .resumable import MAX_EVENT_ID_LENGTH, ResumableEventSourceResponse, last_event_id
from .routing import (
    CONVERTERS,
    Endpoint,
    Hook,
    Lifespan,
    Mount,
    NoMatchFound,
    Route,
    Router,
    compile_pattern,
)
from .serverstop import end_at_server_stop, stop_streams
from .shutdown import GracefulShutdown
from .sse import EventSourceResponse, ServerSentEvent
from .starlette import starlette_compatible
from .streams import batched, timeout_each
from .tracer import Tracer, escape_control, format_record
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONNECTION_SPECIFIC",
    "CONVERTERS",
    "DEFAULT_MAXLEN",
    "END_OF_BODY",
    "HEARTBEAT",
    "MAX_BODY_SIZE",
    "MAX_EVENT_ID_LENGTH",
    "MAX_QUERY_SIZE",
    "MAX_THREADS",
    "URL",
    "ASGIApp",
    "Address",
    "BackgroundTask",
    "BackgroundTasks",
    "Broadcast",
    "ClientDisconnect",
    "ConnectionHeaderWarning",
    "Content",
    "ContentEncoder",
    "Endpoint",
    "Event",
    "EventIDNotFound",
    "EventLog",
    "EventSourceResponse",
    "FormData",
    "GracefulShutdown",
    "GzipEncoder",
    "HTTPException",
    "Headers",
    "HeadersInput",
    "Hook",
    "JSONResponse",
    "Lifespan",
    "MemoryEventLog",
    "Message",
    "Mount",
    "MutableHeaders",
    "NoMatchFound",
    "QueryParams",
    "Receive",
    "RedisEventLog",
    "Request",
    "Response",
    "ResumableEventSourceResponse",
    "Route",
    "Router",
    "Scope",
    "Send",
    "ServerSentEvent",
    "State",
    "StreamingResponse",
    "Subscription",
    "Tracer",
    "URLPath",
    "accepts_gzip",
    "aiterate",
    "batched",
    "close_iterator",
    "compile_pattern",
    "encode_header",
    "encode_response_headers",
    "end_at_server_stop",
    "escape_control",
    "format_record",
    "gzip_response",
    "import_object",
    "is_async_callable",
    "is_token",
    "iterate_in_threadpool",
    "last_event_id",
    "open_event_log",
    "parse_accept_encoding",
    "route_path",
    "run_in_threadpool",
    "starlette_compatible",
    "stop_streams",
    "timeout_each",
    "validation_error",
]

__version__ = "0.1.0"
