"""Throwaway Redis on 127.0.0.1, one server or a cluster, that a test or a benchmark can break.

Theory of operation
===================

**One server.** A :class:`RedisServer` is a redis-server process started
with :func:`asgi_stream.tools.process.serve` on a free port, its files in a
directory of its own, stopped when the ``with`` block ends. It is either

- *persistent* (the default): an append-only file synced at every write
  (``--appendonly yes --appendfsync always``), so a SIGKILL and a restart
  lose nothing Redis acknowledged, as a production Redis with AOF would; or
- *not persistent* (``persistent=False``): no append-only file and no
  snapshot, so a restart comes back empty. A benchmark wants this one (an
  fsync per write would be what it measures) and so does a test that only
  needs *a* Redis.

It can be broken in the ways a real one breaks: :meth:`RedisServer.kill`
(SIGKILL: its connections are reset), :meth:`RedisServer.start` again on the
same port from the same files, :meth:`RedisServer.pause` (SIGSTOP: it holds
its connections and answers nothing, as a server stuck swapping or a network
that drops packets would) and :meth:`RedisServer.resume` (SIGCONT).

**A cluster.** Redis Cluster cuts the key space into 16,384 *hash slots*:
a key's slot is the CRC16 of the key modulo 16,384 (:func:`slot_of`), where
only the part inside the first ``{...}`` counts when there is one (a *hash
tag*: ``{user1}.a`` and ``{user1}.b`` share a slot). Each master serves some
ranges of slots, and each has replicas, which copy it *asynchronously*: a
write the master acknowledged may not have reached its replica yet. Nodes
talk to each other on the *cluster bus*, a second port, the node's port plus
10,000 (so a node's port must be below 55,536). A client connects to any
node, learns which master serves which slots (``CLUSTER SLOTS``), and sends
each command to the master of its key's slot. A node that is asked for a key
it does not serve answers

- ``MOVED slot host:port``: the slot is served over there now (update the map);
- ``ASK slot host:port``: the slot is being migrated and this key has gone
  already; ask over there this once, after an ``ASKING`` command;
- ``CLUSTERDOWN``: some slot has no master that works, so this node refuses
  every command until the cluster heals.

A master that does not answer for ``cluster-node-timeout`` is suspected
(``PFAIL``) by each node that noticed, and declared failed (``FAIL``) when a
majority of masters agree; its replica then waits a little (half a second
plus a random part, more for a replica further behind), asks the masters for
votes, and is *promoted*: it serves the slots, with a new configuration epoch
that wins over the old master's, which, when it comes back, becomes a replica
of the new one. In between, from the ``FAIL`` until the promotion, some slots
have no master, and by default (``cluster-require-full-coverage yes``) every
node then answers ``CLUSTERDOWN``, even a blocked ``XREAD`` on a master that
is fine: a failover stalls every key, not only the failed master's.
:class:`RedisCluster` uses a node timeout of 500 ms, so a failover takes a
second or two rather than the default fifteen and more.

:class:`RedisCluster` starts ``masters * (1 + replicas)`` nodes (3 masters and
3 replicas by default) in cluster mode, each a :class:`RedisServer` with its
own ``nodes.conf`` (``cluster-config-file``, where a node remembers its id and
the cluster) and append-only file in a directory of its own, and creates the
cluster with ``redis-cli --cluster create``. Each node is in one of these
states, which the cluster's methods move it between:

=========== =================================== ==========================
state       what it does                        leaves by
=========== =================================== ==========================
running     serves, gossips                     ``kill``, ``pause``
paused      holds its sockets, answers nothing  ``resume``
killed      gone; others mark it ``FAIL``       ``start`` (rejoins)
=========== =================================== ==========================

Every wait is bounded, and a timeout raises :class:`ClusterNotReady` with
what each node says and its log.

API
===

- ``RedisServer(directory, persistent=True)``, a context manager: ``.url``
  (``redis://127.0.0.1:PORT/0``), ``.port``, ``.server`` (the running
  :class:`~asgi_stream.tools.process.ServerProcess`), ``.process``;
  ``start()``, ``kill()``, ``kill_and_restart()``, ``pause()``, ``resume()``,
  ``stop()``.
- ``RedisCluster(directory, masters=3, replicas=1, persistent=True)``, a
  context manager: ``.url`` (``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...``,
  the masters' addresses when it was created, fixed for its life: a client
  needs only one of them to find the rest), ``.nodes`` (:class:`RedisServer`\\ s,
  each with ``.cluster_id``); ``view()`` (``CLUSTER NODES`` parsed:
  :class:`NodeView`\\ s), ``role(node)``, ``masters()``,
  ``replica_of(master)``, ``master_of(slot)``, ``client(node)``;
  ``kill(node)``, ``start(node)``, ``pause(node)``, ``resume(node)``,
  ``fail_over(master)``, ``move_slot(slot, to, hold=0.0)``;
  ``wait_promoted(replica)``, ``wait_ok()``.
- ``slot_of(key)``: the hash slot of a key, as Redis computes it.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from ..redis_cluster_eventlog import slot_of
from .process import HOST, ServerProcess, free_port, serve

__all__ = [
    "SLOTS",
    "ClusterNotReady",
    "NodeView",
    "RedisCluster",
    "RedisServer",
    "slot_of",
]

#: How many hash slots a Redis Cluster has.
SLOTS = 16384
#: The cluster bus of a node listens on its port plus this.
BUS_OFFSET = 10000
#: The bound on one command to a node: a paused node answers nothing.
COMMAND_TIMEOUT = 2.0


def _executable(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is missing: bash scripts/test.sh installs it")
    return found


class RedisServer:
    """A redis-server on 127.0.0.1 that can be killed, restarted, paused and resumed.

    ``options`` are added to the command line (the cluster's nodes add their
    cluster settings). ``port`` is a free one by default. The server starts
    when the ``with`` block begins (or at :meth:`start`) and stops when it ends.
    """

    def __init__(
        self,
        directory: Path,
        *,
        persistent: bool = True,
        port: int | None = None,
        options: Sequence[str] = (),
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.persistent = persistent
        self.port = port or free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        #: The node's id in its cluster (``CLUSTER MYID``), when it is in one.
        self.cluster_id = ""
        self.paused = False
        self._options = list(options)
        self._stack = contextlib.ExitStack()
        self._starts = 0
        self._server: ServerProcess | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{HOST}:{self.port}"

    @property
    def server(self) -> ServerProcess:
        """The process of the latest start (it may have been killed since)."""
        if self._server is None:
            raise RuntimeError(f"the redis-server of port {self.port} was never started")
        return self._server

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The redis-server process of the latest start."""
        return self.server.process

    @property
    def running(self) -> bool:
        """Started, and not exited (a paused server is running)."""
        return self._server is not None and self._server.process.poll() is None

    def command(self) -> list[str]:
        """The redis-server command line, without ``--port`` (:func:`serve` adds it)."""
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        if not self.persistent:
            persistence = ["--appendonly", "no"]
        return [
            _executable("redis-server"),
            *("--bind", HOST, "--save", "", "--dir", str(self.directory)),
            *persistence,
            *self._options,
        ]

    def start(self) -> None:
        """Start the server on its port, from its files; return once it listens."""
        if self.running:
            raise RuntimeError(f"the redis-server of port {self.port} is running already")
        self._starts += 1
        log_path = self.directory / f"redis-{self._starts}.log"
        started = serve(
            self.command(), log_path, port=self.port, start_timeout=10.0, stop_timeout=5.0
        )
        self._server = self._stack.enter_context(started)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, its connections reset."""
        self.server.stop(signal.SIGKILL)
        self.paused = False

    def kill_and_restart(self) -> None:
        """SIGKILL the server, then start it again on the same port, from its files."""
        self.kill()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections, and answers nothing."""
        self.server.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.running:
            self.server.process.send_signal(signal.SIGCONT)
        self.paused = False

    def output(self) -> str:
        """The log of the latest start."""
        return self.server.output() if self._server is not None else ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a bound); resumed first, if paused."""
        self.resume()  # a stopped process would ignore the SIGTERM that ends it
        self._stack.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class ClusterNotReady(RuntimeError):
    """The cluster did not reach the awaited state in time; the message holds the nodes' logs."""


@dataclass
class NodeView:
    """One line of ``CLUSTER NODES``: a node as another node (or itself) sees it."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str  # "-" for a master
    connected: bool
    slots: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "noaddr"})

    @classmethod
    def parse(cls, line: str) -> NodeView:
        # <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...
        fields = line.split()
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        slots = []
        for part in fields[8:]:
            if part.startswith("["):  # a slot being imported or migrated: "[slot->-id]"
                continue
            low, _, high = part.partition("-")
            slots.append((int(low), int(high or low)))
        return cls(
            id=fields[0],
            port=port,
            flags=frozenset(fields[2].split(",")),
            master_id=fields[3],
            connected=fields[7] == "connected",
            slots=slots,
        )


def _cluster_port(taken: set[int]) -> int:
    """A free port below 55,536 whose cluster bus port (port + 10,000) is free too."""
    for _ in range(1000):
        port = free_port()
        bus = port + BUS_OFFSET
        if bus >= 65536 or {port, bus} & taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((HOST, bus))
            except OSError:
                continue
        taken.update((port, bus))
        return port
    raise RuntimeError("found no free port whose cluster bus port is free too")


class RedisCluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on 127.0.0.1.

    The nodes start and the cluster is created when the ``with`` block
    begins; they stop when it ends. ``node_timeout_ms`` is the cluster's
    ``cluster-node-timeout``; ``timeout`` bounds each wait of this class.
    """

    def __init__(
        self,
        directory: Path,
        *,
        masters: int = 3,
        replicas: int = 1,
        persistent: bool = True,
        node_timeout_ms: int = 500,
        timeout: float = 30.0,
    ) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        self.timeout = timeout
        self.replicas = replicas
        ports: set[int] = set()
        self.nodes: list[RedisServer] = []
        for _ in range(masters * (1 + replicas)):
            port = _cluster_port(ports)
            options = [
                *("--cluster-enabled", "yes"),
                *("--cluster-config-file", f"nodes-{port}.conf"),
                *("--cluster-node-timeout", str(node_timeout_ms)),
                # A master waits 5 s by default for more replicas to ask before it
                # streams its data to one: here that would be most of every (re)start.
                *("--repl-diskless-sync-delay", "0"),
            ]
            node_dir = directory / f"node-{port}"
            node = RedisServer(node_dir, persistent=persistent, port=port, options=options)
            self.nodes.append(node)
        seeds = ",".join(node.address for node in self.nodes[:masters])
        self.url = f"redis+cluster://{seeds}"

    # -- starting and stopping ------------------------------------------------

    def __enter__(self) -> Self:
        try:
            for node in self.nodes:
                node.start()
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _create(self) -> None:
        command = [_executable("redis-cli"), "--cluster", "create"]
        command += [node.address for node in self.nodes]
        command += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout)
        if done.returncode != 0:
            raise ClusterNotReady(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        for node in self.nodes:
            with self.client(node) as connection:
                node.cluster_id = str(connection.execute_command("CLUSTER", "MYID"))
        self.wait_ok()

    def close(self) -> None:
        """Stop every node: all told at once, so that none waits for another's exit."""
        for node in self.nodes:
            node.resume()
            if node.running:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    # -- looking -----------------------------------------------------------------

    def client(self, node: RedisServer, decode: bool = True) -> redis.Redis:
        """A connection to ``node`` alone (not a cluster client), every call bounded.

        Answers are decoded as UTF-8 unless ``decode`` is false (keys may be any bytes).
        """
        return redis.Redis(
            host=HOST,
            port=node.port,
            decode_responses=decode,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
        )

    def _live(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.running and not node.paused]

    def _views(self, node: RedisServer) -> dict[str, NodeView]:
        with self.client(node) as connection:
            text = str(connection.execute_command("CLUSTER", "NODES"))
        views = (NodeView.parse(line) for line in text.splitlines() if line.strip())
        return {view.id: view for view in views}

    def view(self) -> dict[str, NodeView]:
        """The cluster as the first live node that answers sees it, by node id."""
        for node in self._live():
            with contextlib.suppress(redis.RedisError):
                return self._views(node)
        raise ClusterNotReady("no node of the cluster answers")

    def _node(self, node_id: str) -> RedisServer:
        return next(node for node in self.nodes if node.cluster_id == node_id)

    def role(self, node: RedisServer) -> str:
        """``"master"`` or ``"replica"`` as the cluster sees it, or ``"down"`` when not running."""
        if not node.running:
            return "down"
        return "master" if self.view()[node.cluster_id].is_master else "replica"

    def masters(self) -> list[RedisServer]:
        """The masters that serve slots now (not failed), in the order of their first slot."""
        views = self.view().values()
        serving = [view for view in views if view.is_master and view.slots and not view.failed]
        serving.sort(key=lambda view: view.slots[0])
        return [self._node(view.id) for view in serving]

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A replica of ``master`` (the first one, when it has several)."""
        for view in self.view().values():
            if view.master_id == master.cluster_id and not view.is_master:
                return self._node(view.id)
        raise LookupError(f"the node of port {master.port} has no replica")

    def master_of(self, slot: int) -> RedisServer:
        """The master that serves ``slot`` now."""
        for view in self.view().values():
            if view.is_master and any(low <= slot <= high for low, high in view.slots):
                return self._node(view.id)
        raise LookupError(f"no master serves slot {slot}")

    # -- breaking ------------------------------------------------------------------

    def kill(self, node: RedisServer) -> None:
        """SIGKILL ``node``; the others mark it failed after the node timeout."""
        node.kill()

    def start(self, node: RedisServer) -> None:
        """Start ``node`` again from its ``nodes.conf`` and append-only file; wait till it rejoins.

        A master that was failed over comes back as a replica of its successor.
        """
        node.start()
        self.wait_ok()

    def pause(self, node: RedisServer) -> None:
        """SIGSTOP ``node``: a master paused past the node timeout is failed over."""
        node.pause()

    def resume(self, node: RedisServer) -> None:
        """SIGCONT ``node`` after :meth:`pause`."""
        node.resume()

    def fail_over(self, master: RedisServer) -> RedisServer:
        """SIGKILL ``master``; wait until its replica serves its slots; return the replica."""
        replica = self.replica_of(master)
        self.kill(master)
        self.wait_promoted(replica)
        self.wait_ok()
        return replica

    def wait_promoted(self, replica: RedisServer) -> None:
        """Wait until ``replica`` says it is a master (its master failed, or is paused)."""

        def promoted() -> bool:
            with self.client(replica) as connection:
                return bool(connection.info("replication")["role"] == "master")

        self._wait(promoted, f"the replica of port {replica.port} to be promoted")

    def move_slot(self, slot: int, to: RedisServer, hold: float = 0.0) -> None:
        """Migrate ``slot`` with its keys to master ``to``, as ``redis-cli --cluster reshard`` does.

        The slot is marked *migrating* on its master and *importing* on
        ``to``; its keys are moved (``MIGRATE``, 100 at a time); then every
        master is told that ``to`` serves it. In between, the old master
        answers a command whose key has gone already ``ASK`` (and one that
        names several keys of the slot, some gone or new, ``TRYAGAIN``); once
        the slot is reassigned, ``MOVED``. ``hold`` seconds are spent in each
        half of the migration, before the keys move and after, so that a test
        can meet both.
        """
        source = self.master_of(slot)
        if source is to:
            raise ValueError(f"slot {slot} is served by the node of port {to.port} already")
        timeout_ms = str(int(self.timeout * 1000))
        with self.client(source, decode=False) as old, self.client(to) as new:
            new.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.cluster_id)
            old.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", to.cluster_id)
            time.sleep(hold)
            while keys := old.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                old.execute_command("MIGRATE", HOST, to.port, "", 0, timeout_ms, "KEYS", *keys)
            time.sleep(hold)
            # The new owner first: from then on, whoever the old owner redirects to serves.
            new.execute_command("CLUSTER", "SETSLOT", slot, "NODE", to.cluster_id)
            old.execute_command("CLUSTER", "SETSLOT", slot, "NODE", to.cluster_id)
        for master in self.masters():
            if master not in (source, to):
                with self.client(master) as other:
                    other.execute_command("CLUSTER", "SETSLOT", slot, "NODE", to.cluster_id)
        self.wait_ok()

    # -- waiting -------------------------------------------------------------------

    def wait_ok(self) -> None:
        """Wait until every live node says ``cluster_state:ok``, all slots served, and they agree.

        Agreeing: the same master for every slot, every node known, no live
        node marked failed by another, and every live replica's link to its
        master up (so a failover has a replica that holds the data).
        """
        self._wait(self._ok, "every node to say cluster_state:ok and agree")

    def _ok(self) -> bool:
        owners = set()
        live = self._live()
        live_ids = {node.cluster_id for node in live}
        for node in live:
            with self.client(node) as connection:
                info = str(connection.execute_command("CLUSTER", "INFO"))
                if "cluster_state:ok" not in info or f"cluster_slots_ok:{SLOTS}" not in info:
                    return False
                if f"cluster_known_nodes:{len(self.nodes)}\r" not in info:
                    return False
                replication = connection.info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
            views = self._views(node)
            owners.add(frozenset((v.id, tuple(v.slots)) for v in views.values() if v.is_master))
            if any(view.failed for view in views.values() if view.id in live_ids):
                return False  # a node that came back is not known to be back everywhere yet
        return len(owners) == 1

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except redis.RedisError as exc:  # a node still starting, or just killed
                last = exc
            time.sleep(0.05)
        raise ClusterNotReady(
            f"timed out after {self.timeout} s waiting for {what}" + self._report(last)
        )

    def _report(self, last: Exception | None) -> str:
        lines = [f" (last error: {last!r})" if last else ""]
        for node in self.nodes:
            state = "paused" if node.paused else "running" if node.running else "down"
            lines.append(f"--- node of port {node.port} ({state}) ---")
            if node.running and not node.paused:
                with contextlib.suppress(redis.RedisError), self.client(node) as connection:
                    lines.append(str(connection.execute_command("CLUSTER", "NODES")))
            lines.append(_tail(node.output()))
        return "\n".join(lines)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
