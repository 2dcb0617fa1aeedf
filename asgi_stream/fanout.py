"""One subscriber of an event log's stream: its replay, then its share of the live fan-out.

Theory of operation
===================

A process that streams one event log to many clients could read the log once
per client: a cursor each, a command each, a connection each while it waits
(that was :meth:`~asgi_stream.eventlog.EventLog.read` before). Every serious
fan-out system does the opposite. The process reads each stream *once*, and
hands every event to its local subscribers, as :class:`~asgi_stream.Broadcast`
does: one ``Frame``, encoded once, appended to
each subscriber's bounded buffer. So the log keeps, per stream that has local
subscribers, one :class:`~asgi_stream.Broadcast` (the *fan-out*), fed by
whatever learns of new events first: ``append`` itself in memory, the one
shared reader task of the process with Redis.

A subscriber then waits on its own buffer only. It holds no connection and
issues no command while it follows, so a client that leaves is forgotten at
once, and a thousand followers cost a thousand buffers, not a thousand
connections.

**Joining without a gap or a duplicate.** A subscriber that resumes after an
ID needs the events it missed (the *replay*) and then the live ones. It is
added to the fan-out *first*, and in the same step (no ``await`` between)
learns ``live_from``, the ID of the last event the fan-out has handed out: its
buffer will receive exactly the events after ``live_from``. The replay is then
the events after its ID up to and including ``live_from``, read from the log
page by page at the subscriber's pace, and nothing can fall between the two
(with Redis, a stream that had no local subscriber yet gets its ``live_from``
from the shared reader, which looks up the stream's newest ID before it
starts reading it). When the subscriber's ID is *newer* than ``live_from``
(it saw events on another worker that this one has not handed out yet),
there is nothing to replay, and the buffer's first events up to its ID are
skipped instead: IDs only grow, so comparing them as numbers is enough.

**Following.** Once a subscriber knows its ``live_from``, has replayed
what it missed and watches for no final event, a step only empties its
buffer. It then takes :class:`~asgi_stream.Subscription`'s own step: one
awaitable, made with the subscription and reused, that waits on the
subscriber's future itself; no coroutine is made for it. That step runs
once per event per subscriber (with the response's send, it is the whole
per-subscriber cost of the fan-out), and it is where an idle subscriber
waits, so it holds no frame of this class's.

**Ends.** A subscription ends when its buffer overflows (``max_pending``: the
client resumes by ID when it reconnects, and the log counts it in
``disconnected``), after an event whose type is in ``final_events``, or when
the log is closed. It raises :class:`~asgi_stream.eventlog.EventIDNotFound`
when its ID cannot be resumed, and :class:`~asgi_stream.eventlog.EventLogUnavailable`
when its replay cannot be read now.
"""

from __future__ import annotations

from typing import Literal, Protocol

from .broadcast import Broadcast, Frame, Subscription

__all__ = ["LogSubscription"]


class SubscriptionSource(Protocol):
    """What a :class:`LogSubscription` asks of its event log (an ``EventLog`` is one)."""

    disconnected: int

    async def wait_live_from(self, subscription: LogSubscription) -> None:
        """Return once ``subscription.live_from`` is known (or the subscription ended)."""

    async def replay_page(
        self, stream: str, after: str | None, upto: str, check: bool
    ) -> list[Frame]:
        """A page of the events after ``after`` (the oldest held if ``None``), up to ``upto``.

        With ``check``, first raise ``EventIDNotFound`` if ``after`` cannot be resumed.
        """

    def position(self, event_id: str) -> tuple[int, int]:
        """An ID as numbers that order the events of a stream."""

    def leave(self, subscription: LogSubscription) -> None:
        """Forget a subscription that ended."""


class StreamFanout(Broadcast):
    """One stream's subscribers in this process: its log hands each new event to :meth:`deliver`."""

    @property
    def subscriptions(self) -> tuple[LogSubscription, ...]:
        """The open subscriptions, oldest first (a copy)."""
        return tuple(s for s in super().subscriptions if isinstance(s, LogSubscription))

    def start_live(self, live_from: str) -> None:
        """Tell the subscriptions that wait for it where their buffers start, and wake them."""
        for subscription in self.subscriptions:
            if subscription.live_from is None:
                subscription.live_from = live_from
                subscription.wake()

    def fail(self, error: Exception) -> None:
        """End every subscription with ``error`` (see :meth:`LogSubscription.fail`)."""
        for subscription in self.subscriptions:
            subscription.fail(error)

    def drop_all(self) -> None:
        """Disconnect every subscriber, as too slow: each resumes by ID when it comes back."""
        for subscription in self.subscriptions:
            subscription.drop()


class LogSubscription(Subscription):
    """A subscriber of one stream of an event log: an async iterator of encoded events.

    Made by :meth:`~asgi_stream.eventlog.EventLog.subscribe`. Each step
    yields the next page of the replay, or everything waiting in the buffer,
    joined, as bytes ready for an :class:`~asgi_stream.EventSourceResponse`
    (each event with its ``id:``). ``aclose()`` leaves the stream at once.
    """

    __slots__ = (
        "_after",
        "_checked",
        "_failure",
        "_final_events",
        "_live_from",
        "_replayed",
        "_skip_through",
        "_source",
        "dropped",
        "stream",
    )

    def __init__(
        self,
        source: SubscriptionSource,
        stream: str,
        fanout: StreamFanout,
        after: str | None,
        start: Literal["beginning", "live"],
        final_events: frozenset[str],
    ) -> None:
        super().__init__(fanout)
        self._source = source
        self.stream = stream
        self._live_from: str | None = None
        #: Whether the subscription was ended for falling ``max_pending`` events behind.
        self.dropped = False
        self._after = after
        self._checked = after is None
        self._replayed = after is None and start == "live"
        self._final_events = final_events
        self._skip_through: tuple[int, int] | None = None
        self._failure: Exception | None = None
        self._following = False  # not before live_from is known and the replay is done

    @property
    def live_from(self) -> str | None:
        """The last event the fan-out had handed out when this subscriber joined.

        Set by the log (at once, or by its reader). A subscription with
        nothing to replay and nothing to watch for (no final events) then
        just follows its buffer, in :class:`~asgi_stream.broadcast.Subscription`'s
        own step, from its very first wait: an idle subscriber waits there,
        in no coroutine of this class.
        """
        return self._live_from

    @live_from.setter
    def live_from(self, event_id: str | None) -> None:
        self._live_from = event_id
        self._following = event_id is not None and self._replayed and not self._final_events

    async def next_frames(self) -> list[Frame]:
        while True:
            if self.ended and not self.pending:
                raise self._end_error()
            if self.live_from is None:
                await self._source.wait_live_from(self)
                continue
            if self._replayed:
                # Replayed (and the first events skipped, if they were to be):
                # unless a final event is to be watched for, the next steps
                # only empty the buffer, in Subscription's own step.
                self._following = self._skip_through is None and not self._final_events
                try:
                    frames = await super().next_frames()
                except StopAsyncIteration:
                    continue  # the check above says why it ended
            else:
                frames = await self._replay_page()
                if not frames:
                    continue
            if self._skip_through is not None:
                frames = [frame for frame in frames if frame.position > self._skip_through]
                if not frames:
                    continue
                self._skip_through = None  # IDs only grow: nothing later is older
            return self._stop_after_final(frames) if self._final_events else frames

    async def _replay_page(self) -> list[Frame]:
        upto = self.live_from
        assert upto is not None  # next_frames waited for it
        check = not self._checked
        page = await self._source.replay_page(self.stream, self._after, upto, check)
        self._checked = True
        if check and self._after is not None:
            after = self._source.position(self._after)
            if after > self._source.position(upto):
                self._skip_through = after
        if page:
            self._after = page[-1].id
        if not page or page[-1].id == upto:
            self._replayed = True
        return page

    def _stop_after_final(self, frames: list[Frame]) -> list[Frame]:
        for index, frame in enumerate(frames):
            if frame.event in self._final_events:
                self.end()
                return frames[: index + 1]
        return frames

    def fail(self, error: Exception) -> None:
        """End the subscription: what it holds is still given out, then ``error`` is raised.

        What the log does when it cannot go on with a stream: the stream went
        back (:class:`~asgi_stream.eventlog.EventIDNotFound`: the client is
        told to reset) or cannot be read (:class:`~asgi_stream.EventLogUnavailable`).
        """
        self._failure = error
        self.end(keep_pending=True)

    def _end_error(self) -> BaseException:
        return self._failure if self._failure is not None else StopAsyncIteration()

    def drop(self) -> None:
        self.dropped = True
        self._source.disconnected += 1
        super().drop()

    def end(self, keep_pending: bool = False) -> None:
        super().end(keep_pending)
        self._source.leave(self)

    def __repr__(self) -> str:
        state = "ended" if self.ended else f"{self.pending} pending"
        return f"<LogSubscription {self.stream!r} {state}>"
