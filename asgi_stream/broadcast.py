"""Broadcast: one producer, many subscribers, each event encoded once.

The usual way to fan events out is a queue per subscriber: the producer puts
each event in every queue, and each subscriber's generator takes it out and
yields it to its response, which encodes it. Every subscriber pays for its own
copy of the work, and a subscriber that cannot keep up grows its queue for
ever.

:class:`Broadcast` does the shared work once. :meth:`Broadcast.publish`
encodes the event to bytes, then appends *those same bytes* to each
subscriber's buffer and wakes the subscriber if it was waiting: O(1) for the
event, plus one append per subscriber. Each subscription is an async iterator
that any streaming response can send::

    news = Broadcast()

    async def endpoint(scope, receive, send):
        await EventSourceResponse(news.subscribe())(scope, receive, send)

    news.publish(ServerSentEvent("hello", event="greeting"))  # from any task

A subscription yields everything its buffer holds as one chunk. A subscriber
that is idle gets each event alone, at once; one that is still sending the
last chunk when the next events come takes them all in one message, so a
busy server catches up in fewer, larger writes instead of falling further
behind.

Slow subscribers
================

A subscriber's buffer holds at most ``max_pending`` events. A subscriber that
falls that far behind (its client reads too slowly, or not at all) is
*disconnected*: its buffer is dropped and its stream ends. The count is
:attr:`Broadcast.disconnected`. No event is ever dropped silently from a
stream that goes on: a browser's ``EventSource`` sees the stream end,
reconnects, and can resume from its ``Last-Event-ID`` (see
:mod:`asgi_stream.resumable`). The memory a subscriber can hold is bounded,
and it is only references: every buffer holds the same bytes objects.

One process
===========

A :class:`Broadcast` lives in one process's memory. Under ``--workers 2``, a
publish reaches the subscribers of the worker that made it, and no other.
For several workers or hosts, publish to an event log's stream and subscribe
to it (:meth:`EventLog.subscribe <asgi_stream.EventLog.subscribe>`): the same mechanism,
one buffer per subscriber on one fan-out per process, fed by Redis when the
log is opened with a Redis URL, with resume by ID on top.

Leaving
=======

A subscription leaves the broadcast when it is closed (``aclose()``): a
streaming response closes its content at every ending, the client's
disconnect included, so a subscriber is forgotten as soon as its client goes.
:meth:`Broadcast.close` ends every subscription (at shutdown, say).
Everything here runs on the event loop's thread; publish from a coroutine or
a callback of the loop, not from another thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any, NoReturn

from .sse_format import ServerSentEvent

__all__ = ["Broadcast", "Subscription"]


class Frame:
    """One event as a fan-out carries it: its bytes on the wire, and what a subscriber checks.

    A frame is made once per event and shared by every subscriber's buffer.
    ``wire`` is the encoded event. An event log's fan-out (see
    :meth:`EventLog.subscribe <asgi_stream.EventLog.subscribe>`) also fills ``id``,
    ``event`` (its SSE type), ``data`` and ``position``, the ID as a pair of
    ints that orders the events of one stream; a :class:`Broadcast` needs
    none of them.
    """

    __slots__ = ("data", "event", "id", "position", "wire")

    def __init__(
        self,
        wire: bytes,
        id: str | None = None,
        data: str = "",
        event: str | None = None,
        position: tuple[int, int] = (0, 0),
    ) -> None:
        self.wire = wire
        self.id = id
        self.data = data
        self.event = event
        self.position = position

    def __repr__(self) -> str:
        return f"<Frame {self.id!r} {self.wire[:40]!r}>"


class Broadcast:
    """Events published once, delivered to every current subscriber.

    ``max_pending`` is the most events a subscriber may have waiting; one
    more and it is disconnected (see *Slow subscribers* above).
    """

    def __init__(self, max_pending: int = 256) -> None:
        if type(max_pending) is not int or max_pending < 1:
            raise ValueError(f"max_pending must be an int of at least 1, not {max_pending!r}")
        self.max_pending = max_pending
        #: Events published so far.
        self.published = 0
        #: Subscribers disconnected for falling ``max_pending`` events behind.
        self.disconnected = 0
        self._subscriptions: dict[Subscription, None] = {}  # insertion-ordered set

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscriptions)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The open subscriptions, oldest first (a copy: ending one while looping is safe)."""
        return tuple(self._subscriptions)

    def subscribe(self) -> Subscription:
        """A new subscription: the events published from now on, as bytes."""
        return self.attach(Subscription(self))

    def attach(self, subscription: Subscription) -> Subscription:
        """Add a subscription made for this broadcast (a subclass's, say); it is returned."""
        self._subscriptions[subscription] = None
        return subscription

    def publish(self, event: ServerSentEvent | str | bytes) -> int:
        """Send ``event`` to every subscriber; returns how many it reached.

        A :class:`~asgi_stream.sse.ServerSentEvent` is encoded, a ``str`` is
        the data of one event, ``bytes`` are sent as they are.
        """
        if isinstance(event, str):
            event = ServerSentEvent(data=event)
        data = event.encode() if isinstance(event, ServerSentEvent) else bytes(event)
        return self.deliver(Frame(data))

    def deliver(self, frame: Frame) -> int:
        """Append ``frame`` to every subscriber's buffer; returns how many it reached.

        :meth:`publish` without the encoding: the step an event log's fan-out
        shares with this class.
        """
        self.published += 1
        too_slow = []
        for subscription in self._subscriptions:
            pending = subscription._pending
            if len(pending) >= self.max_pending:
                too_slow.append(subscription)
                continue
            pending.append(frame)
            waiter = subscription._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        for subscription in too_slow:
            self.disconnected += 1
            subscription.drop()
        return len(self._subscriptions)

    def close(self) -> None:
        """End every subscription: each stream sends what it holds, then ends."""
        for subscription in list(self._subscriptions):
            subscription.end(keep_pending=True)

    def _forget(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription, None)


class Subscription:
    """One subscriber's events: an async iterator of bytes, for a streaming response.

    Each step yields every event that is waiting, joined; it waits only when
    none is. The iterator ends when the subscriber was disconnected for being
    too slow, or the broadcast was closed. ``aclose()`` leaves the broadcast.
    """

    __slots__ = ("_broadcast", "_ended", "_following", "_pending", "_step", "_waiter")

    def __init__(self, broadcast: Broadcast) -> None:
        self._broadcast = broadcast
        self._pending: list[Frame] = []
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        #: Whether a step is only "wait for the buffer, empty it": see :meth:`__anext__`.
        self._following = True
        self._step = _FollowingStep(self)

    def __aiter__(self) -> Subscription:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        # Every event takes this step once per subscriber. While the
        # subscription only follows its buffer, the step is _FollowingStep,
        # one awaitable made with the subscription and reused: no coroutine is
        # made per event, none is kept per idle subscriber, and what an event
        # leaves behind per subscriber is one future. A subclass with more to
        # do first (an event log's replay) clears _following until it is done.
        if self._following:
            return self._step
        return self._joined_next()

    async def _joined_next(self) -> bytes:
        return _wire_of(await self.next_frames())

    def _end_error(self) -> BaseException:
        """What the iterator raises once it has ended and given out what it held."""
        return StopAsyncIteration()

    @property
    def ended(self) -> bool:
        """Whether the subscription has left its broadcast (it may still hold events)."""
        return self._ended

    @property
    def pending(self) -> int:
        """How many events wait in the buffer."""
        return len(self._pending)

    async def next_frames(self) -> list[Frame]:
        """Every frame waiting (at least one), once there is one; the buffer is emptied.

        Raises :class:`StopAsyncIteration` once the subscription has ended
        and holds nothing more.
        """
        while not self._pending:
            if self._ended:
                raise StopAsyncIteration
            await self._new_waiter()
        frames = self._pending
        self._pending = []
        return frames

    async def wait(self) -> None:
        """Wait until :meth:`wake`: an event came, the subscription ended, or another reason."""
        await self._new_waiter()

    def _new_waiter(self) -> asyncio.Future[None]:
        # What wake() and a delivery resolve. A waiter that is done (resolved,
        # or cancelled with its task) is left in place: both look at done().
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter

    def wake(self) -> None:
        """Wake the subscriber if it waits."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def aclose(self) -> None:
        """Leave the broadcast; the iterator ends."""
        self.end()

    def drop(self) -> None:
        """Disconnect the subscriber for falling ``max_pending`` events behind."""
        self.end()

    def end(self, keep_pending: bool = False) -> None:
        """Leave the broadcast and end the iterator (after what is pending, if kept)."""
        self._ended = True
        if not keep_pending:
            self._pending.clear()
        self._broadcast._forget(self)
        self.wake()

    def __repr__(self) -> str:
        state = "ended" if self._ended else f"{len(self._pending)} pending"
        return f"<Subscription {state}>"


class _FollowingStep(Generator["asyncio.Future[None]", None, bytes]):
    """``await``-ing it is one step of a following subscription: the bytes of
    what its buffer holds, once it holds something.

    It waits the way an asyncio future's own ``__await__`` does: it hands the
    subscription's future to the task that awaits it (the task sleeps until
    the future is done, then resumes it with ``send()``), and looks at the
    buffer again. The buffer is emptied in place: one list for the
    subscription's life.
    """

    __slots__ = ("_subscription",)

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def __await__(self) -> _FollowingStep:
        return self

    def send(self, _: None) -> asyncio.Future[None]:
        subscription = self._subscription
        pending = subscription._pending
        if pending:
            wire = _wire_of(pending)
            pending.clear()
            raise StopIteration(wire)
        if subscription._ended:
            raise subscription._end_error()
        waiter = subscription._new_waiter()
        waiter._asyncio_future_blocking = True  # what a task looks for in what it is handed
        return waiter

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> NoReturn:
        raise typ if val is None else val  # a cancellation of the task, say: ours to pass on


def _wire_of(frames: list[Frame]) -> bytes:
    """The bytes of ``frames``, one chunk."""
    if len(frames) == 1:
        return frames[0].wire
    return b"".join([frame.wire for frame in frames])
