"""asgi-stream: HTTP streaming and Server-Sent Events on raw ASGI.

Start reading at :mod:`asgi_stream.response`.
"""

from .background import BackgroundTask, BackgroundTasks
from .exceptions import ClientDisconnect, HTTPException
from .headers import ConnectionHeaderWarning, Headers
from .request import Request
from .response import JSONResponse, Response, StreamingResponse
from .routing import Router
from .sse import EventSourceResponse, ServerSentEvent

__all__ = [
    "BackgroundTask",
    "BackgroundTasks",
    "ClientDisconnect",
    "ConnectionHeaderWarning",
    "EventSourceResponse",
    "HTTPException",
    "Headers",
    "JSONResponse",
    "Request",
    "Response",
    "Router",
    "ServerSentEvent",
    "StreamingResponse",
]

__version__ = "0.1.0"
