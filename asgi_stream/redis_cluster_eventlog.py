"""The event log in a Redis Cluster (or Valkey cluster): beyond what one Redis can hold.

Theory of operation
===================

What every Redis log does (streams as keys, appends stored once, replays,
trimming, entries we did not write) is in :mod:`asgi_stream.redis_streams`.
A cluster adds one rule: the keys of one command, and of one script, must
share a *hash slot*, and each slot lives on one master at a time (with its
replicas), which can change. So the log spreads its streams over a fixed
number of **shards** (``shards=16``), each a hash tag, and everything that
must go together shares its shard's tag:

===============================  ======================================================
key or channel                   what it is
===============================  ======================================================
``asgi-stream:{T}:NAME``         the stream ``NAME``, of the shard whose tag is ``T``
``asgi-stream.changed:{T}``      the shard's *notification channel* (sharded pub/sub):
                                 each append round trip names the streams it changed
``asgi-stream.epoch:{T}``        a random value drawn once per data set of the shard
``asgi-stream.applied:{T}:R``    what round trip ``R`` stored in the shard
``asgi-stream.wake:{T}:P``       process ``P``'s wake-up channel in the shard
===============================  ======================================================

A stream's shard is the CRC-16 of its name modulo ``shards``, and each
shard's tag is chosen so that the shards' slots lie evenly over the 16,384
slots: a cluster made with ``redis-cli --cluster create`` (contiguous,
even ranges) holds the same number of shards on each master. Every process
must use the same ``shards``.

**One publisher pipeline per node.** A round trip of appends makes one
script call per shard, and sends the calls of each master in one pipeline
on a connection of its own, all masters at once. The pipeline ends with
``WAIT 1`` (``replicas=1``, the default): an append counts as stored only
once a replica has it, so a failover cannot lose it, even that of a master
that was paused and answers, once woken, as the master it no longer is (its
``WAIT`` finds no replica). A master whose replica is gone (it was just
promoted) stores without one, as Redis itself would: its ``ROLE``, asked
with every round trip, says how many it has. A call that meets a fault,
a slot on the move (``MOVED``, ``ASK``, ``TRYAGAIN``), a master that is
gone (``CLUSTERDOWN``) or too few replicas is sent again, the same, to the
master that holds its slot then, until ``append_timeout``; its applied key
makes it count once. Unlike one Redis, a master that cannot be reached is
not an error at once: in a cluster it is usually a failover, a delay of a
second or two.

**One reader per node.** For each master that holds shards, the process runs
one reader task with one pub/sub connection: it subscribes
(``SSUBSCRIBE``) to the notification and wake channels of that master's
shards, then reads, through the cluster client, the streams with local
subscribers that a notification names (one ``XREAD`` per stream, in one
pipeline per master). Sharded pub/sub loses what is published while nobody
is subscribed, so the notification is only a wake-up: the data is in the
streams, and after every (re)subscription the reader reads each stream it
follows from its cursor, which catches up whatever it missed. A subscriber
that joins a new stream publishes to its shard's wake channel, and the
reader gives the stream its ``live_from``.

A master's reader goes through these states, one round of
``_master_step`` at a time:

=============  ==============================================================
state          what the reader of one master does
=============  ==============================================================
subscribing    ``SSUBSCRIBE`` to its shards' channels; wait until Redis confirms
catching up    check its shards' epochs and streams; mark every stream it
               follows there as stale
reading        give new streams their ``live_from``; read the stale streams
waiting        wait for a message: a notification, a wake-up, ``sunsubscribe``
=============  ==============================================================

From *waiting* it goes back to *reading*. A fault, a ``sunsubscribe`` or a
new plan (the shards moved) sends it back to *subscribing*, after the
coordinator has asked the cluster where the shards are; a master left with
no shard ends its reader.

**Slots that move, masters that fail.** When a slot moves, Redis ends the
subscriptions of its channels (``sunsubscribe``); when a master dies, its
reader's connection breaks; a master that stops answering is found by a
``PING`` on the pub/sub connection every ``block_ms`` of silence, which
must come back within ``socket_timeout``. Each of these is a delay: the
reader asks the cluster for its slots again, with a backoff while the
failover runs, each master's reader takes the shards it holds now, and
catches up from its cursors. Before it reads on, it checks the shards'
epochs and the streams' newest IDs (see "a log that went back" in
:mod:`asgi_stream.redis_streams`): a promoted replica that lacks what was
handed out tells its subscribers to reset.

What this needs from the cluster: each master has a replica, and appends
wait for one (``replicas=1``, the default). With ``replicas=0`` a failover
may drop the newest appends, which the publisher was told are stored: their
subscribers are told to reset, but a subscriber that had not seen them yet
never will. With an append-only file (``appendonly yes``), a master
restarted before a failover comes back with its data.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import dataclasses
import functools
import logging
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .eventlog_base import DEFAULT_MAX_PENDING, DEFAULT_MAXLEN
from .redis_streams import (
    APPEND_SCRIPT,
    AppendCall,
    RedisStreamsLog,
    Resend,
    backoff,
    faults,
    unavailable,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.asyncio.cluster import RedisCluster

__all__ = ["RedisClusterEventLog"]

logger = logging.getLogger(__name__)

_SLOTS = 16_384
_WAIT_MS = 1_000  # how long one WAIT for replicas lasts before the call is sent again


class _SlotsMoved(Exception):
    """A reader's master no longer holds one of its shards: ask the cluster again."""


def slot_of(key: str | bytes) -> int:
    """The hash slot of ``key``, as Redis Cluster computes it (CRC-16, with ``{tags}``)."""
    data = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return binascii.crc_hqx(data, 0) % _SLOTS


def shard_tags(shards: int) -> list[str]:
    """A hash tag per shard, shard ``i``'s slot in the ``i``-th of ``shards`` even ranges."""
    tags = []
    for shard in range(shards):
        n = 0
        while slot_of(f"{{{shard}.{n}}}") * shards // _SLOTS != shard:
            n += 1
        tags.append(f"{shard}.{n}")
    return tags


def parse_cluster_url(
    url: str,
) -> tuple[list[tuple[str, int]], dict[str, Any], dict[str, int]]:
    """The nodes, connection options and settings of a cluster URL.

    The URL is ``redis+cluster://[user:password@]host:port,host:port[?shards=16&replicas=1]``;
    ``rediss+cluster://`` connects with TLS. The nodes are where the client
    first asks for the cluster's slots: one is enough, more survive the loss
    of one. ``shards`` and ``replicas`` are those of
    :class:`RedisClusterEventLog`. Raises :class:`ValueError` for anything
    else.
    """
    scheme, _, rest = url.partition("://")
    if scheme not in ("redis+cluster", "rediss+cluster") or not rest:
        raise ValueError(f"a cluster URL is redis+cluster://host:port,..., not {url!r}")
    parts = urlsplit("redis://" + rest)
    if parts.fragment or parts.path not in ("", "/", "/0"):
        raise ValueError(f"a cluster has database 0 only, and a URL no fragment: {url!r}")
    settings: dict[str, int] = {}
    for name, values in parse_qs(parts.query, keep_blank_values=True).items():
        if name not in ("shards", "replicas") or len(values) != 1 or not values[0].isdigit():
            raise ValueError(f"{url!r}: a cluster URL takes ?shards=N&replicas=N only")
        settings[name] = int(values[0])
    userinfo, _, hosts = parts.netloc.rpartition("@")
    options: dict[str, Any] = {"ssl": True} if scheme == "rediss+cluster" else {}
    if userinfo:
        username, _, password = userinfo.partition(":")
        options["username"] = unquote(username) or None
        options["password"] = unquote(password) or None
    nodes = []
    for address in hosts.split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{address!r} in {url!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    return nodes, options, settings


class RedisClusterEventLog(RedisStreamsLog):
    """An :class:`~asgi_stream.eventlog.EventLog` in the Redis Streams of a Redis Cluster.

    ``url`` is ``redis+cluster://[user:password@]host:port,host:port,…``
    (``rediss+cluster://`` for TLS): the nodes where the client first asks
    for the cluster's slots (one is enough; more survive the loss of one).

    ``shards`` is how many hash slots the streams spread over (16 by
    default; the same in every process). With ``replicas=N`` (1 by default)
    an append counts as stored once N replicas of its master hold it (or
    all it has, if it has fewer), so that a failover cannot lose it; ``0``
    does not wait, and a failover may lose the newest appends. Both
    may be given in the URL instead (``?shards=16&replicas=1``), which is
    how :func:`~asgi_stream.open_event_log` passes them.

    The other arguments are those of :class:`~asgi_stream.RedisEventLog`;
    ``block_ms`` is here how long a reader's pub/sub connection may be
    silent before it is checked with a ``PING``.
    """

    def __init__(
        self,
        url: str,
        maxlen: int = DEFAULT_MAXLEN,
        batch: int = 500,
        block_ms: int = 5_000,
        *,
        shards: int | None = None,
        replicas: int | None = None,
        socket_timeout: float = 15.0,
        append_timeout: float = 30.0,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._nodes, self._auth, settings = parse_cluster_url(url)
        for name, value in (("shards", shards), ("replicas", replicas)):
            if value is not None and name in settings:
                raise ValueError(f"{name} is given twice: in the URL and as an argument")
        shards = settings.get("shards", 16) if shards is None else shards
        replicas = settings.get("replicas", 1) if replicas is None else replicas
        if type(shards) is not int or not 1 <= shards <= _SLOTS:
            raise ValueError(f"shards must be an int from 1 to {_SLOTS}, not {shards!r}")
        if type(replicas) is not int or replicas < 0:
            raise ValueError(f"replicas must be an int of at least 0, not {replicas!r}")
        self.shards = shards
        self.replicas = replicas
        self._tags = shard_tags(shards)
        self._process = secrets.token_hex(8)
        # How long a master may take to answer a quick command, a PING or a
        # subscription before it counts as gone: a paused master is found soon.
        self._answer_within = min(socket_timeout, block_ms / 1000)
        super().__init__(
            url,
            maxlen,
            batch,
            block_ms,
            socket_timeout=socket_timeout,
            append_timeout=append_timeout,
            max_pending=max_pending,
        )

    def _cluster(self, name: str, **options: Any) -> RedisCluster:
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self._nodes],
            client_name=name,
            **self._auth,
            **{**self.options, **options},
        )

    def _node_client(self, node: str, name: str) -> Redis:
        """A connection of our own to one node (``host:port``), without redis-py's retries.

        Its commands are quick (a round trip of appends waits ``WAIT``'s one
        second at most), so a master that does not answer within
        ``_answer_within`` counts as gone.
        """
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        host, _, port = node.rpartition(":")
        return Redis(
            host=host,
            port=int(port),
            single_connection_client=True,
            client_name=name,
            retry=Retry(NoBackoff(), 0),
            **self._auth,
            **{**self.options, "socket_timeout": max(self._answer_within, 2 * _WAIT_MS / 1000)},
        )

    def _open_connections(self) -> None:
        # Commands (replays, look-ups): redis-py's cluster client follows
        # MOVED and ASK, and asks for the slots again when a node fails.
        self.redis = self._cluster("asgi-stream-commands")
        # The readers read, and the publishers look up where each slot is,
        # through a cluster client of their own, whose commands are all quick:
        # a master that stopped answering is given up on within a few seconds.
        self._reader_redis = self._cluster("asgi-stream-reader", socket_timeout=self._answer_within)
        super()._open_connections()
        self._node_publishers: dict[str, Redis] = {}  # per master, its publishing connection
        self._masters: dict[str, _Master] = {}  # per master, its reader's state
        self._replicas_seen: dict[str, int] = {}  # per master, its replicas at the last append
        self._script_sha: str | None = None
        self._coordinator: asyncio.Task[None] | None = None
        self._plan: dict[str, frozenset[int]] = {}  # per master, the shards it holds
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._replan = asyncio.Event()  # set: the coordinator asks where the shards are
        self._planned = asyncio.Event()  # set, then replaced, each time it has answered
        self._epochs: dict[int, str] = {}  # per shard, its data set's epoch
        self._wakes_sent: set[int] = set()  # shards whose reader a wake-up is on its way to

    def _clients(self) -> tuple[Redis | RedisCluster, ...]:
        masters = [master.client for master in self._masters.values()]
        return (self.redis, self._reader_redis, *self._node_publishers.values(), *masters)

    def key(self, stream: str) -> str:
        """The Redis key that holds ``stream``: in its shard's hash slot."""
        return f"asgi-stream:{{{self._tags[self.shard(stream)]}}}:{stream}"

    def shard(self, stream: str) -> int:
        """The shard of ``stream``."""
        return binascii.crc_hqx(stream.encode("utf-8", "surrogateescape"), 0) % self.shards

    def _changed_channel(self, shard: int) -> str:
        return f"asgi-stream.changed:{{{self._tags[shard]}}}"

    def _wake_channel(self, shard: int) -> str:
        return f"asgi-stream.wake:{{{self._tags[shard]}}}:{self._process}"

    def _epoch_key(self, shard: int) -> str:
        return f"asgi-stream.epoch:{{{self._tags[shard]}}}"

    # The publishers: one per shard (a slow master delays its own shards
    # only), each round trip a pipeline to the master that holds the shard.

    def _lane_of(self, stream: str) -> int:
        return self.shard(stream)

    def _calls(self, streams: list[str], fields: list[list[str]]) -> list[AppendCall]:
        by_shard: dict[int, list[int]] = {}
        for i, stream in enumerate(streams):
            by_shard.setdefault(self.shard(stream), []).append(i)
        calls = []
        for shard, appends in by_shard.items():
            tag = self._tags[shard]
            keys = [f"asgi-stream.applied:{{{tag}}}:{secrets.token_hex(16)}"]
            keys += [self._changed_channel(shard)]  # a channel, in KEYS for its slot
            keys += [self.key(streams[i]) for i in appends]
            names = "\n".join(dict.fromkeys(streams[i] for i in appends))
            args: list[str | int] = [self.applied_seconds, self.maxlen, "", names]
            for i in appends:
                args += [len(fields[i]), *fields[i]]
            calls.append(AppendCall(keys, args, appends))
        return calls

    async def _send(self, calls: list[AppendCall]) -> list[Any]:

        try:
            if self._script_sha is None:
                self._script_sha = await self.redis.script_load(APPEND_SCRIPT)
            await self._reader_redis.initialize()
            by_node: dict[str, list[int]] = {}
            for i, call in enumerate(calls):
                by_node.setdefault(_master_of(self._reader_redis, call.keys[0]), []).append(i)
        except Exception as exc:  # no slot map yet: sent again
            return [Resend(f"where to send the appends is not known: {exc}")] * len(calls)
        replies: list[Any] = [None] * len(calls)
        sent = [self._send_to(node, [calls[i] for i in idxs]) for node, idxs in by_node.items()]
        for idxs, node_replies in zip(by_node.values(), await asyncio.gather(*sent), strict=True):
            for i, reply in zip(idxs, node_replies, strict=True):
                replies[i] = reply
        if any(isinstance(reply, (Resend, *faults())) for reply in replies):
            # A master is gone or a slot moved: where are the slots now? (A
            # failover under way still names the old master: the resends wait.)
            self._replan.set()  # the readers ask too
            with contextlib.suppress(Exception):
                await self._reader_redis.nodes_manager.initialize()
        return replies

    async def _send_to(self, node: str, calls: list[AppendCall]) -> list[Any]:
        """One pipeline to one master: its calls (and a ``WAIT``); each call's reply."""
        from redis.exceptions import (
            AskError,
            ClusterDownError,
            NoScriptError,
            ReadOnlyError,
            TryAgainError,
        )

        client = self._node_publishers.get(node)
        if client is None:
            client = self._node_publishers[node] = self._node_client(node, "asgi-stream-publisher")
        assert self._script_sha is not None
        try:
            if self.replicas and node not in self._replicas_seen:
                self._count_replicas(node, await client.role())
            async with client.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.evalsha(self._script_sha, len(call.keys), *call.keys, *call.args)
                # Wait for as many replicas as asked, of those the master had at
                # the last round trip: a master whose replica is gone (it was
                # just promoted) stores without one, as Redis itself would.
                wanted = min(self.replicas, self._replicas_seen.get(node, self.replicas))
                if self.replicas:
                    pipe.execute_command("WAIT", wanted, _WAIT_MS)
                    pipe.execute_command("ROLE")
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # a fault of the connection: every call is sent again
            self._node_publishers.pop(node, None)
            await client.aclose()
            return [exc] * len(calls)
        if self.replicas:
            role, acked = replies.pop(), replies.pop()
            self._count_replicas(node, role)
            if not isinstance(acked, int) or acked < wanted:
                moved = Resend(f"{acked} of {wanted} replicas of {node} have the append")
                replies = [moved if not isinstance(r, Exception) else r for r in replies]
        out: list[Any] = []
        for reply in replies:
            if isinstance(reply, NoScriptError):  # a new master: its script cache is empty
                with contextlib.suppress(Exception):
                    await client.script_load(APPEND_SCRIPT)
                out.append(Resend(str(reply)))
            elif isinstance(reply, AskError | TryAgainError | ClusterDownError | ReadOnlyError):
                out.append(Resend(str(reply)))  # the slot moves, or its master changed
            else:
                out.append(reply)
        return out

    def _count_replicas(self, node: str, role: Any) -> None:
        """Note how many replicas ``node`` has now, from its ``ROLE`` reply."""
        if isinstance(role, list) and len(role) == 3:  # ["master", offset, [replicas]]
            self._replicas_seen[node] = len(role[2])

    # The readers' start, and their wake-ups (see RedisStreamsLog.wait_live_from).

    def _start_reading(self) -> None:
        if self._coordinator is None:
            self._coordinator = asyncio.get_running_loop().create_task(
                self._supervise(self._coordinate, "the event log's readers"),
                name=f"asgi-stream readers {self._process}",
            )
            self._coordinator.add_done_callback(self._reader_ended)

    def _wake_group(self, stream: str) -> int:
        return self.shard(stream)

    async def _wake(self, group: int) -> None:
        async with self._gate:
            with unavailable():
                await self.redis.spublish(self._wake_channel(group), "w")

    # The readers: a coordinator that knows the slots, and one reader per master.

    async def _coordinate(self, after_fault: bool) -> bool:
        """Ask the cluster where the shards are; run one reader per master that holds some."""
        self._replan.clear()
        await self._reader_redis.initialize()
        await self._reader_redis.nodes_manager.initialize()
        plan: dict[str, set[int]] = {}
        for shard, tag in enumerate(self._tags):
            plan.setdefault(_master_of(self._reader_redis, f"{{{tag}}}"), set()).add(shard)
        self._plan = {node: frozenset(shards) for node, shards in plan.items()}
        planned, self._planned = self._planned, asyncio.Event()
        planned.set()  # the readers that waited for this plan go on
        for node in self._plan:
            reader = self._readers.get(node)
            if reader is None or reader.done():
                master = self._masters[node] = _Master(
                    node, self._node_client(node, "asgi-stream-reader")
                )
                self._readers[node] = asyncio.get_running_loop().create_task(
                    self._run_master(master), name=f"asgi-stream reader {node}"
                )
        await self._replan.wait()
        await asyncio.sleep(backoff(1))  # a failover or a move rarely ends in one step
        return True

    # One reader per master: a round (see _master_step), run by _supervise.

    async def _run_master(self, master: _Master) -> None:
        """Read until this master holds no shard or the log closes; then close the connection."""
        try:
            await self._supervise(
                functools.partial(self._master_step, master),
                f"the reader of {master.node}",
                delays=(_SlotsMoved,),
                on_error=functools.partial(self._fail_master, master),
            )
        finally:
            await self._unsubscribe(master)
            if self._masters.get(master.node) is master:
                del self._masters[master.node]
            with contextlib.suppress(Exception):
                await master.client.aclose()

    async def _master_step(self, master: _Master, after_fault: bool) -> bool:
        if after_fault and master.shards:
            # The master may be gone: ask where the shards are now, and wait
            # for the answer rather than knock on a door that may not open.
            await self._unsubscribe(master)
            planned = self._planned
            self._replan.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(planned.wait(), self.options["socket_timeout"])
        shards = self._plan.get(master.node, frozenset())
        if after_fault or shards != master.shards:
            await self._unsubscribe(master)
            if not shards or self._closing:
                return False
            master.shards = shards
            master.pubsub = await self._subscribe(master)
            await self._catch_up(master)
        self._wakes_sent.difference_update(shards)
        mine = [name for name in self._unresolved if self.shard(name) in shards]
        if mine:
            await self._resolve(self._reader_redis, mine)
        stale = self._master_stale(master)
        if stale:
            await self._read_streams(self._reader_redis, stale)
        await self._wait_on_master(master)
        return True

    def _fail_master(self, master: _Master, error: Exception) -> None:
        """End the subscriptions of this master's streams (after an error not of Redis)."""
        for name in list(self._cursors) + list(self._unresolved):
            if self.shard(name) in master.shards:
                self._fail_stream(name, error)

    def _master_stale(self, master: _Master) -> list[str]:
        return [name for name in self._stale if self.shard(name) in master.shards]

    async def _unsubscribe(self, master: _Master) -> None:
        pubsub, master.pubsub = master.pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _subscribe(self, master: _Master) -> PubSub:
        """Subscribe to the shards' channels on this master; return once Redis confirms."""
        pubsub = master.client.pubsub()
        channels: set[str] = set()
        for shard in master.shards:  # one SSUBSCRIBE per slot: two slots cannot share one
            pair = (self._changed_channel(shard), self._wake_channel(shard))
            await pubsub.ssubscribe(*pair)
            channels.update(pair)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._answer_within
        while channels:
            if loop.time() >= deadline:
                raise TimeoutError(f"{master.node} did not confirm the subscriptions")
            message = await pubsub.get_message(timeout=deadline - loop.time())
            if message is not None and message["type"] == "ssubscribe":
                channels.discard(message["channel"])
        master.heard = loop.time()
        master.ping_due = None
        return pubsub

    async def _catch_up(self, master: _Master) -> None:
        """After a (re)subscription: did the shards go back? Then read all their streams again."""
        ordered = sorted(master.shards)
        async with self._reader_redis.pipeline(transaction=False) as pipe:
            for shard in ordered:
                pipe.set(self._epoch_key(shard), secrets.token_hex(8), nx=True)
                pipe.get(self._epoch_key(shard))
            replies = await pipe.execute()
        for shard, epoch in zip(ordered, replies[1::2], strict=True):
            streams = [name for name in self._cursors if self.shard(name) == shard]
            known = self._epochs.get(shard)
            self._epochs[shard] = epoch
            if known is not None and epoch != known:
                self._reset_all(streams)
            elif known is not None:
                await self._gone_back(self._reader_redis, streams)
        self._stale.update(name for name in self._cursors if self.shard(name) in master.shards)

    async def _wait_on_master(self, master: _Master) -> None:
        """Wait for messages on the pub/sub connection; mark the streams they name as stale.

        A master silent for ``block_ms`` is sent a ``PING``, which it must
        answer within ``block_ms`` too (or ``socket_timeout``, if shorter): a
        master that stopped answering is found, and its reader asks where
        its shards are.
        """
        pubsub = master.pubsub
        assert pubsub is not None
        loop = asyncio.get_running_loop()
        timeout = 0.0 if self._master_stale(master) else self.block_ms / 1000
        message = await pubsub.get_message(timeout=timeout)
        while message is not None:
            master.heard = loop.time()
            master.ping_due = None  # any message answers for the master
            kind = message["type"]
            if kind == "smessage" and message["channel"].startswith("asgi-stream.changed:"):
                for name in message["data"].split("\n"):
                    if name in self._cursors:
                        self._stale.add(name)
            elif kind == "sunsubscribe":
                self._replan.set()
                raise _SlotsMoved(f"{message['channel']} moved away from {master.node}")
            message = await pubsub.get_message(timeout=0.0)
        now = loop.time()
        if master.ping_due is not None and now > master.ping_due:
            raise TimeoutError(f"{master.node} did not answer a PING")
        if master.ping_due is None and now - master.heard >= self.block_ms / 1000:
            await pubsub.ping()
            master.ping_due = now + self._answer_within

    async def aclose(self) -> None:
        """End every subscription, stop the readers and the publishers, close the connections."""
        self._bind_loop()
        await super().aclose()
        self._closing = True
        tasks = [t for t in (self._coordinator, *self._readers.values()) if t is not None]
        self._coordinator = None
        self._readers = {}
        self._replan.set()
        for task in tasks:
            task.cancel()
        if tasks:
            # A reader closes its connection as it ends; one that a lost
            # cancellation keeps (redis-py can lose one inside a command) is
            # closed here.
            await asyncio.wait(tasks, timeout=1.0)
        for master in list(self._masters.values()):
            with contextlib.suppress(Exception):
                await master.client.aclose()
        await self._stop_publisher()


def _master_of(cluster: RedisCluster, key: str) -> str:
    """The ``host:port`` of the master that holds ``key``'s slot, by the client's slot map.

    A slot that no master holds raises ``SlotNotCoveredError``: a fault, waited out.
    """
    node = cluster.get_node_from_key(key)
    assert node is not None  # redis-py raises instead of returning None
    return str(node.name)


@dataclasses.dataclass(eq=False)
class _Master:
    """One master's reader: its connection, its pub/sub, and the shards it holds there."""

    node: str
    client: Redis
    pubsub: PubSub | None = None
    shards: frozenset[int] = frozenset()
    heard: float = 0.0  # when the last message came (the event loop's clock)
    ping_due: float | None = None  # when the answer to a PING is late
