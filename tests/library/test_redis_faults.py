"""Faults of Redis that must stay delays (issue 27), each against a real redis-server.

Each test is the issue's observation scaled down so that it reproduces in a
second or two: a resume storm on a pool of 4 connections, a pause of three
socket timeouts, a restart without persistence, a key of the wrong type
under the prefix, a reader that follows 2,000 streams. Clients are
:class:`~asgi_stream.ResumableEventSourceResponse`\\s driven by asgiref's
``ApplicationCommunicator``, or bare subscriptions; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.testing import ApplicationCommunicator

from asgi_stream import EventLog, EventLogUnavailable, RedisEventLog, ResumableEventSourceResponse
from asgi_stream.testing import parse_event_stream
from asgi_stream.tools.redis_servers import RedisServer
from tests.asgi import body_of, http_scope
from tests.asgi import request as exchange
from tests.library.test_fanout import collect
from tests.waiting import until

pytestmark = pytest.mark.server


def unique(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "-").replace("]", "")


def run(test: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(test(), timeout)

    return asyncio.run(main())


async def append(log: EventLog, stream: str, data: str, event: str | None = None) -> str:
    """Append as a careful publisher does: try again while Redis cannot be reached."""
    for _ in range(200):
        try:
            return await log.append(stream, data, event)
        except EventLogUnavailable:
            await asyncio.sleep(0.05)
    raise AssertionError("Redis never came back")


def test_a_resume_storm_on_a_small_pool_is_never_told_redis_cannot_be_reached(
    redis_url: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """300 clients resume at once, each from one of 10 IDs, on a pool of 4 connections.

    Each one asks for the stream's last event (``final_events``) and replays
    what it missed: with a command each, the pool ran out and clients were
    sent away ("Too many connections"). Here they queue and share reads.
    """
    name = unique(request)
    caplog.set_level(logging.WARNING)

    async def test() -> list[list[str]]:
        async with contextlib.aclosing(RedisEventLog(redis_url + "?max_connections=4")) as log:
            ids = [await log.append(name, str(i)) for i in range(10)]
            await log.append(name, "end", event="done")

            async def resume(after: int) -> list[str]:
                response = ResumableEventSourceResponse(
                    log, name, ids[after], final_events=["done"]
                )
                messages = await exchange(response, http_scope(), timeout=30)
                return [e.data for e in parse_event_stream(body_of(messages).decode()).events]

            return await asyncio.gather(*(resume(i % 10) for i in range(300)))

    bodies = run(test)
    for i, body in enumerate(bodies):
        assert body == [str(n) for n in range(i % 10 + 1, 10)] + ["end"], (i, body)
    assert "cannot be reached" not in caplog.text


def test_an_append_sent_again_during_a_redis_pause_is_stored_once(tmp_path: Path) -> None:
    """SIGSTOP for three socket timeouts while an append is on its way.

    redis-py's retry sent the ``XADD`` again, and Redis ran both when it woke:
    every subscriber saw the event twice. Here it is sent again as the same
    script call, which stores it once, and the append returns its one ID.
    """
    with RedisServer(tmp_path) as server:

        async def test() -> tuple[list[str], list[str], str]:
            log = RedisEventLog(server.url, block_ms=200, socket_timeout=0.5)
            async with contextlib.aclosing(log):
                subscription = log.subscribe("s", start="live", final_events=["done"])
                follower = asyncio.ensure_future(collect(subscription))
                await until(lambda: subscription.live_from is not None)  # it follows from now
                before = await log.append("s", "before")
                server.pause()
                try:
                    during = asyncio.ensure_future(append(log, "s", "during"))
                    await asyncio.sleep(1.5)  # the pause: three socket timeouts
                finally:
                    server.resume()
                during_id = await asyncio.wait_for(during, 15)
                end = await append(log, "s", "end", "done")
                got = await asyncio.wait_for(follower, 15)
            with redis.Redis.from_url(server.url, decode_responses=True) as client:
                stored = [fields["data"] for _, fields in client.xrange(RedisEventLog.key("s"))]
            assert [event_id for event_id, _ in got] == [before, during_id, end]
            return stored, [data for _, data in got], during_id

        stored, delivered, _ = run(test)
    assert stored == ["before", "during", "end"]
    assert delivered == ["before", "during", "end"]


def test_two_publishers_appending_through_a_redis_pause_store_each_event_once(
    tmp_path: Path,
) -> None:
    """Two logs (two processes, as far as Redis can tell) append to one stream at once
    while Redis is paused: every event is stored once, and a follower sees each once."""
    with RedisServer(tmp_path) as server:

        async def test() -> tuple[list[str], list[str]]:
            logs = [RedisEventLog(server.url, block_ms=200, socket_timeout=0.5) for _ in range(2)]
            async with contextlib.aclosing(logs[0]), contextlib.aclosing(logs[1]):
                subscription = logs[0].subscribe("s", start="live", final_events=["done"])
                follower = asyncio.ensure_future(collect(subscription))
                await until(lambda: subscription.live_from is not None)
                await logs[1].append("s", "warm")  # both publishers connected before the pause
                server.pause()
                try:
                    sent = [
                        asyncio.ensure_future(append(logs[i % 2], "s", f"{i}")) for i in range(20)
                    ]
                    await asyncio.sleep(1.5)  # three socket timeouts
                finally:
                    server.resume()
                ids = await asyncio.wait_for(asyncio.gather(*sent), 15)
                end = await append(logs[0], "s", "end", "done")
                got = await asyncio.wait_for(follower, 15)
            assert len(set(ids)) == 20 and got[-1][0] == end
            with redis.Redis.from_url(server.url, decode_responses=True) as client:
                stored = [fields["data"] for _, fields in client.xrange(RedisEventLog.key("s"))]
            return stored, [data for _, data in got]

        stored, delivered = run(test)
    assert sorted(stored) == sorted(["warm", "end", *map(str, range(20))])
    assert delivered == stored  # once each, in the stream's order


async def receive_until(comm: ApplicationCommunicator, text: str, timeout: float = 15) -> str:
    """The body received so far, once it holds ``text``."""
    body = b""
    while text.encode() not in body:
        message = await comm.receive_output(timeout)
        body += message.get("body", b"")
    return body.decode()


def test_redis_restarted_without_its_data_gives_a_reset_never_a_silent_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis with no persistence (its default) is killed and restarts empty.

    What the follower was handed before is gone from the log; nothing after
    it can be placed. The follower gets ``event: reset`` (with the last ID
    it was handed, ``"reason": "unknown"``, and an empty ``id:``), then what
    the log holds now, from its beginning: never a silent jump.
    """
    caplog.set_level(logging.WARNING)
    with RedisServer(tmp_path, persistent=False) as server:

        async def test() -> list[tuple[str, str, str]]:
            log = RedisEventLog(server.url, block_ms=200, socket_timeout=1.0)
            async with contextlib.aclosing(log):
                response = ResumableEventSourceResponse(log, "s", final_events=["done"])
                comm = ApplicationCommunicator(response, http_scope())
                await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
                assert (await comm.receive_output(15))["status"] == 200
                ids = [await log.append("s", str(i)) for i in range(10)]
                before = await receive_until(comm, "data: 9\n")
                await asyncio.to_thread(server.kill_and_restart)
                for i in range(10, 20):
                    await append(log, "s", str(i))
                await append(log, "s", "end", "done")
                after = await receive_until(comm, "event: done\n")
                await comm.wait(15)
            events = parse_event_stream(before + after).events
            assert events[9].last_event_id == ids[9]
            return [(e.type, e.data, e.last_event_id) for e in events]

        events = run(test)
    assert [data for _, data, _ in events[:10]] == [str(i) for i in range(10)]
    kind, data, last_id = events[10]
    assert kind == "reset" and last_id == ""
    assert json.loads(data)["reason"] == "unknown"
    assert [data for _, data, _ in events[11:]] == [str(i) for i in range(10, 20)] + ["end"]
    assert "Redis lost its data" in caplog.text


def test_a_stream_that_went_back_behind_what_was_handed_out_gives_a_reset(
    redis_url: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """The data set is the same, but a stream lost its newest entries (a failover to a
    replica that lagged): the reader notices when it reconnects, and its subscribers reset."""
    caplog.set_level(logging.WARNING)
    name = unique(request)
    key = RedisEventLog.key(name)

    async def test() -> list[tuple[str, str]]:
        log = RedisEventLog(redis_url, block_ms=200, socket_timeout=1.0)
        async with contextlib.aclosing(log):
            response = ResumableEventSourceResponse(log, name, final_events=["done"])
            comm = ApplicationCommunicator(response, http_scope())
            await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
            assert (await comm.receive_output(15))["status"] == 200
            for i in range(5):
                await log.append(name, str(i))
            before = await receive_until(comm, "data: 4\n")
            with redis.Redis.from_url(redis_url, decode_responses=True) as client:
                client.delete(key)  # what a lagging replica holds: an older history
                client.xadd(key, {"data": "older"}, "1-1")
                for c in client.client_list():
                    if c["name"] == "asgi-stream-reader":
                        client.client_kill_filter(_id=c["id"])  # the reader reconnects
            reset = await receive_until(comm, "event: reset\n")
            await log.append(name, "end", "done")
            after = await receive_until(comm, "event: done\n")
            await comm.wait(15)
        return [(e.type, e.data) for e in parse_event_stream(before + reset + after).events]

    events = run(test, 30)
    assert [data for _, data in events[:5]] == [str(i) for i in range(5)]
    assert events[5][0] == "reset" and json.loads(events[5][1])["reason"] == "unknown"
    assert [data for _, data in events[6:]] == ["older", "end"]  # what it holds now, all of it
    assert f"{key} went back" in caplog.text


def test_a_key_of_another_type_under_the_prefix_is_logged_and_the_other_streams_go_on(
    redis_url: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """A stray string key where a stream would be: ``WRONGTYPE`` for that stream alone.

    It ended the shared reader for good, silently, and every other stream's
    subscribers hung after their replay.
    """
    caplog.set_level(logging.WARNING)
    good, poison = unique(request) + "-good", unique(request) + "-poison"
    with redis.Redis.from_url(redis_url) as client:
        client.set(RedisEventLog.key(poison), "not a stream")

    async def test() -> None:
        async with contextlib.aclosing(RedisEventLog(redis_url)) as log:
            bad = log.subscribe(poison)
            follower = asyncio.ensure_future(collect(log.subscribe(good, final_events=["done"])))
            with pytest.raises(EventLogUnavailable, match="cannot be read"):
                await asyncio.wait_for(anext(bad), 10)
            ids = [await log.append(good, "x"), await log.append(good, "end", "done")]
            assert [event_id for event_id, _ in await asyncio.wait_for(follower, 10)] == ids
            # Over SSE, its client is asked to come back later: a 200 and a retry, never a 500.
            messages = await exchange(ResumableEventSourceResponse(log, poison), http_scope())
            assert messages[0]["status"] == 200
            assert parse_event_stream(body_of(messages).decode()).retry == 1000
            assert messages[-1]["more_body"] is False

    run(test, 30)
    assert f"{RedisEventLog.key(poison)} cannot be read" in caplog.text


def test_a_reader_error_ends_every_subscription_is_logged_once_and_the_reader_recovers(
    redis_url: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """An error of the reader's own command (here: its notification key is a string)."""
    caplog.set_level(logging.WARNING)
    url = redis_url.rsplit("/", 1)[0] + "/7"  # a database of its own: the key is shared
    name = unique(request)
    with redis.Redis.from_url(url) as client:
        client.set("asgi-stream.changed", "not a stream")

    async def test() -> None:
        async with contextlib.aclosing(RedisEventLog(url, block_ms=200)) as log:
            with pytest.raises(EventLogUnavailable, match="reader failed"):
                await asyncio.wait_for(anext(log.subscribe(name)), 10)
            await asyncio.sleep(0.5)  # let it fail again a few times, with its backoff
            with redis.Redis.from_url(url) as client:
                client.delete("asgi-stream.changed")
            follower = asyncio.ensure_future(collect(log.subscribe(name, final_events=["done"])))
            end = await log.append(name, "end", "done")
            assert await asyncio.wait_for(follower, 10) == [(end, "end")]

    run(test, 30)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "reader failed" in errors[0].getMessage()


def blocked_reader_argv_bytes(url: str) -> int | None:
    """The size of the command the log's reader is blocked in, as Redis holds it."""
    with redis.Redis.from_url(url, decode_responses=True) as client:
        for c in client.client_list():
            if c["cmd"] == "xread" and "b" in c["flags"]:
                return int(c["argv-mem"])
    return None


def test_the_reader_names_the_same_keys_however_many_streams_it_follows(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    """20 streams, then 2,000: the blocking read the reader sends does not grow.

    It named every stream on every round trip: 929 KB per command at 20,000.
    """
    prefix = unique(request)

    async def blocked_size(log: RedisEventLog, streams: int) -> int:
        subscriptions = [
            log.subscribe(f"{prefix}-{streams}-{i}", start="live") for i in range(streams)
        ]
        waiting = [asyncio.ensure_future(anext(s)) for s in subscriptions]
        try:
            for _ in range(600):  # every stream joined, and the reader blocked again after that
                await asyncio.sleep(0.05)
                if all(s.live_from is not None for s in subscriptions):
                    size = await asyncio.to_thread(blocked_reader_argv_bytes, redis_url)
                    if size is not None:
                        return size
            raise AssertionError("the reader never blocked with every stream joined")
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            for s in subscriptions:
                await s.aclose()

    async def test() -> tuple[int, int]:
        async with contextlib.aclosing(RedisEventLog(redis_url, block_ms=2000)) as log:
            return await blocked_size(log, 20), await blocked_size(log, 2000)

    few, many = run(test)
    assert many <= few + 32, (few, many)  # a cursor may have a digit more; no key more
