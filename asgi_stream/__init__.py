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
from .broadcast import Broadcast, Frame, Subscription
from .coalesce import BATCH_BYTES, BATCH_ITEMS, coalesce_ready
from .compression import accepts_gzip, gzip_chunks, gzip_response, parse_accept_encoding
from .concurrency import (
    MAX_THREADS,
    aiterate,
    close_iterator,
    is_async_callable,
    iterate_in_threadpool,
    run_in_threadpool,
)
from .datastructures import URL, QueryParams, State
from .eventlog import MemoryEventLog, open_event_log
from .eventlog_base import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAXLEN,
    Event,
    EventIDNotFound,
    EventLog,
    EventLogUnavailable,
)
from .exceptions import ClientDisconnect, HTTPException, validation_error
from .fanout import LogSubscription
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
from .response import END_OF_BODY, Content, JSONResponse, Response, StreamingResponse
from .resumable import (
    MAX_EVENT_ID_LENGTH,
    UNAVAILABLE_RETRY_MS,
    ResumableEventSourceResponse,
    last_event_id,
    retry_later,
)
from .routing import CONVERTERS, Endpoint, Hook, Lifespan, Mount, Route, Router, compile_pattern
from .shutdown import GracefulShutdown
from .sse import EventSourceResponse, ServerSentEvent
from .streams import HEARTBEAT, batched, heartbeat, timeout_each
from .tracer import Tracer, escape_control, format_record
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BATCH_BYTES",
    "BATCH_ITEMS",
    "CONNECTION_SPECIFIC",
    "CONVERTERS",
    "DEFAULT_MAXLEN",
    "DEFAULT_MAX_PENDING",
    "END_OF_BODY",
    "HEARTBEAT",
    "MAX_BODY_SIZE",
    "MAX_EVENT_ID_LENGTH",
    "MAX_QUERY_SIZE",
    "MAX_THREADS",
    "UNAVAILABLE_RETRY_MS",
    "URL",
    "ASGIApp",
    "BackgroundTask",
    "BackgroundTasks",
    "Broadcast",
    "ClientDisconnect",
    "ConnectionHeaderWarning",
    "Content",
    "Endpoint",
    "Event",
    "EventIDNotFound",
    "EventLog",
    "EventLogUnavailable",
    "EventSourceResponse",
    "Frame",
    "GracefulShutdown",
    "HTTPException",
    "Headers",
    "HeadersInput",
    "Hook",
    "JSONResponse",
    "Lifespan",
    "LogSubscription",
    "MemoryEventLog",
    "Message",
    "Mount",
    "MutableHeaders",
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
    "accepts_gzip",
    "aiterate",
    "batched",
    "close_iterator",
    "coalesce_ready",
    "compile_pattern",
    "encode_header",
    "encode_response_headers",
    "escape_control",
    "format_record",
    "gzip_chunks",
    "gzip_response",
    "heartbeat",
    "import_object",
    "is_async_callable",
    "is_token",
    "iterate_in_threadpool",
    "last_event_id",
    "open_event_log",
    "parse_accept_encoding",
    "retry_later",
    "route_path",
    "run_in_threadpool",
    "timeout_each",
    "validation_error",
]

__version__ = "0.1.0"
