"""The throwaway Redis of tests and benchmarks: a server that restarts, a cluster that fails over.

Each test checks what a test built on :mod:`asgi_stream.tools.redis_servers`
relies on, against real redis-servers, with redis-py's own clients as the
judge: a persistent server keeps what it acknowledged across a SIGKILL, a
cluster serves every slot on its masters, and keys stay readable through a
failover, a slot move and a restart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import redis.cluster
from redis.exceptions import MovedError

from asgi_stream.tools.redis_servers import SLOTS, RedisCluster, RedisServer, slot_of

pytestmark = pytest.mark.server


@pytest.mark.parametrize("persistent", [True, False])
def test_a_restarted_server_keeps_its_keys_only_when_persistent(
    tmp_path: Path, persistent: bool
) -> None:
    with RedisServer(tmp_path, persistent=persistent) as server:
        redis.Redis.from_url(server.url).set("k", "v")
        server.kill_and_restart()
        assert redis.Redis.from_url(server.url).get("k") == (b"v" if persistent else None)


def test_the_slot_of_a_key_is_the_crc16_of_its_hash_tag() -> None:
    assert slot_of("123456789") == 0x31C3  # CRC16/XMODEM's check value, below 16,384
    assert slot_of("{user1}.a") == slot_of("{user1}.b") == slot_of("user1")
    assert slot_of("x{a}{b}") == slot_of("a")  # the first tag only
    assert slot_of(b"{user1}") == slot_of("user1")


def keys_on_every_master(cluster: RedisCluster) -> dict[int, str]:
    """One key for each master, by the master's port."""
    found: dict[int, str] = {}
    for number in range(1000):
        key = f"key-{number}"
        found.setdefault(cluster.master_of(slot_of(key)).port, key)
        if len(found) == 3:
            return found
    raise AssertionError("1,000 keys and not one on each master")


def test_a_cluster_keeps_its_keys_through_a_failover_a_slot_move_and_a_restart(
    tmp_path: Path,
) -> None:
    with RedisCluster(tmp_path) as cluster:
        masters = cluster.masters()
        assert len(cluster.nodes) == 6 and len(masters) == 3
        assert cluster.url == "redis+cluster://" + ",".join(m.address for m in masters)
        assert [cluster.role(node) for node in cluster.nodes].count("replica") == 3
        with cluster.client(masters[0]) as node:  # slot_of agrees with Redis
            for key in ["a", "{user1}.a", "a{}b", "x{a}{b}", "stream:0", "é"]:
                assert node.execute_command("CLUSTER", "KEYSLOT", key) == slot_of(key)
        keys = keys_on_every_master(cluster)
        seeds = [redis.cluster.ClusterNode(m.address.split(":")[0], m.port) for m in masters]
        client = redis.cluster.RedisCluster(startup_nodes=seeds, decode_responses=True)
        try:
            for port, key in keys.items():  # each on its master, and on its replica before the kill
                with cluster.client(next(m for m in masters if m.port == port)) as master:
                    master.set(key, key)
                    assert master.execute_command("WAIT", 1, 5000) == 1

            replica = cluster.replica_of(masters[0])
            assert cluster.fail_over(masters[0]) is replica
            assert cluster.role(replica) == "master" and cluster.role(masters[0]) == "down"
            assert masters[0] not in cluster.masters() and replica in cluster.masters()
            assert {key: client.get(key) for key in keys.values()} == {k: k for k in keys.values()}

            moved_key = keys[masters[1].port]
            cluster.move_slot(slot_of(moved_key), masters[2])
            assert cluster.master_of(slot_of(moved_key)) is masters[2]
            with cluster.client(masters[1]) as old, pytest.raises(MovedError) as moved:
                old.get(moved_key)
            assert moved.value.node_addr == ("127.0.0.1", masters[2].port)
            assert client.get(moved_key) == moved_key

            cluster.start(masters[0])  # it rejoins as the replica of its successor
            assert cluster.role(masters[0]) == "replica"
            assert cluster.replica_of(replica) is masters[0]
            assert (
                sum(high - low + 1 for m in cluster.view().values() for low, high in m.slots)
                == SLOTS
            )
            assert {key: client.get(key) for key in keys.values()} == {k: k for k in keys.values()}
        finally:
            client.close()
    assert not any(node.running for node in cluster.nodes)
