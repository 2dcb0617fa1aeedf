"""The three names of ASGI: scope, receive and send, as type aliases.

A *scope* is a dict describing one connection (``type``, ``method``, ``path``,
``headers`` ...). A *message* is a dict with a ``type``. ``receive`` and
``send`` are coroutine functions that move messages in and out. An ASGI
application is any callable taking the three.
"""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]
