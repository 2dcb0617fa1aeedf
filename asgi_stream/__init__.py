"""asgi-stream: HTTP streaming and Server-Sent Events on raw ASGI.

**The rule for this package.** A module directly in ``asgi_stream/`` is part of
the library: responses, SSE, and the pieces a streaming endpoint is built
from. It needs only the standard library (an optional backend such as Redis is
imported when it is first used, never at import time), and it never imports the
catalogue app (:mod:`asgi_stream.catalogue`) or the tools
(:mod:`asgi_stream.tools`), which are built on it. ``tests/test_layers.py``
holds it to that.

**The public API** is declared here, in ``__all__``: the names a user writes,
each importable from the package itself (``from asgi_stream import
StreamingResponse``). Every other name, in any module, is the library's own
plumbing and may change; ``tests/test_exported_members.py`` lists the public
names, so that adding one is a decision. (The twins of the responses for
FastAPI and Starlette are :mod:`asgi_stream.starlette`'s.)

Start reading at :mod:`asgi_stream.response`.
"""

from .background import BackgroundTask, BackgroundTasks
from .broadcast import Broadcast, Subscription
from .compression import gzip_response
from .concurrency import run_in_threadpool
from .datastructures import URL, Address, QueryParams, State, URLPath
from .eventlog import MemoryEventLog, open_event_log
from .eventlog_base import Event, EventIDNotFound, EventLog, EventLogUnavailable
from .exceptions import ClientDisconnect, HTTPException
from .fanout import LogSubscription
from .files import FileResponse
from .headers import ConnectionHeaderWarning, Headers, HeadersInput, MutableHeaders
from .redis_cluster_eventlog import RedisClusterEventLog  # redis: imported when a log is made
from .redis_eventlog import RedisEventLog  # redis: imported when a log is made
from .request import KeepRequestBody, Request
from .response import Content, JSONResponse, Response, StreamingResponse
from .resumable import ResumableEventSourceResponse, last_event_id, retry_later
from .routing import Mount, NoMatchFound, Route, Router
from .serverstop import stop_streams
from .shutdown import GracefulShutdown
from .sse import EventSourceResponse, ServerSentEvent
from .streams import batched, timeout_each
from .tracer import Tracer
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "URL",
    "ASGIApp",
    "Address",
    "BackgroundTask",
    "BackgroundTasks",
    "Broadcast",
    "ClientDisconnect",
    "ConnectionHeaderWarning",
    "Content",
    "Event",
    "EventIDNotFound",
    "EventLog",
    "EventLogUnavailable",
    "EventSourceResponse",
    "FileResponse",
    "GracefulShutdown",
    "HTTPException",
    "Headers",
    "HeadersInput",
    "JSONResponse",
    "KeepRequestBody",
    "LogSubscription",
    "MemoryEventLog",
    "Message",
    "Mount",
    "MutableHeaders",
    "NoMatchFound",
    "QueryParams",
    "Receive",
    "RedisClusterEventLog",
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
    "batched",
    "gzip_response",
    "last_event_id",
    "open_event_log",
    "retry_later",
    "run_in_threadpool",
    "stop_streams",
    "timeout_each",
]

__version__ = "0.1.0"
