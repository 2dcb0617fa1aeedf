"""A chat model that runs anywhere: local, deterministic, no network, no key.

The catalogue's ``/chat-stream`` talks to a *chat model* through the one
method LangChain's chat models share for streaming::

    async for chunk in model.astream(input):
        print(chunk.content, end="")

Any object with that method works: a LangChain model (``ChatOpenAI``, or the
fake models of ``langchain_core.language_models`` that tests use), or
:class:`LocalChatModel` below, which is the default so that the catalogue
works on a fresh machine. It "answers" by streaming a fixed, friendly reply
token by token, at a steady pace, and some of its tokens contain newlines, so
a client can see that multi-line tokens arrive intact.

:func:`load_chat_model` turns a ``"module:attribute"`` string (the
``ASGI_STREAM_CHAT_MODEL`` setting) into a model. This module does not import
LangChain; it only speaks its interface.
"""

from __future__ import annotations

import asyncio
import pkgutil
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

__all__ = ["ChatChunk", "LocalChatModel", "chunk_text", "load_chat_model"]

# A token is a word with the whitespace after it: "Hello, " or "line.\n\n".
_TOKEN = re.compile(r"\s*\S+\s*")


@dataclass(frozen=True)
class ChatChunk:
    """One piece of a streamed reply, shaped like LangChain's ``AIMessageChunk``."""

    content: str


class LocalChatModel:
    """A stand-in chat model: a deterministic reply, one token every ``delay`` seconds."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay

    def reply(self, message: str) -> str:
        """The whole reply to ``message``; :meth:`astream` sends it token by token."""
        return (
            f"You said: {message}\n\n"
            "I am the local model of asgi-stream. I run on your machine, need no key,\n"
            "and send this same reply every time, one token per event.\n"
            "Set ASGI_STREAM_CHAT_MODEL to use a real model."
        )

    async def astream(
        self, input: Any, config: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatChunk]:
        """Stream the reply to ``input``: a string, or messages (the last one's content counts)."""
        for token in _TOKEN.findall(self.reply(_text_of(input))):
            await asyncio.sleep(self.delay)
            yield ChatChunk(token)


def _text_of(input: Any) -> str:
    if isinstance(input, str):
        return input
    if isinstance(input, list | tuple) and input:
        return _text_of(input[-1])
    content = getattr(input, "content", None)
    return content if isinstance(content, str) else str(input)


def chunk_text(chunk: Any) -> str:
    """The text of a streamed chunk.

    ``content`` is a string for most models; some LangChain models stream a list
    of content blocks instead (strings, or dicts such as ``{"type": "text",
    "text": ...}``), of which only the text counts.
    """
    content = chunk.content
    if isinstance(content, str):
        return content
    return "".join(
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in content
        if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
    )


def load_chat_model(spec: str) -> Any:
    """The model named by ``"package.module:attribute"``.

    The attribute may be a model (anything with ``astream``) or a callable
    that returns one when called without arguments.
    """
    found = pkgutil.resolve_name(spec)
    if not hasattr(found, "astream") and callable(found):
        found = found()
    if not hasattr(found, "astream"):
        raise TypeError(f"{spec!r} is not a chat model: it has no astream() method")
    return found
