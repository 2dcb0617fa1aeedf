"""Fixtures shared by the test modules of every layer (library, catalogue, tools).

A fixture lives here when more than one test module, in more than one layer,
starts the same thing; one layer's fixtures live in that layer's
``conftest.py``. Each one is module-scoped when it starts a process, so that a
module starts it once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asgi_stream.tools.redis_servers import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server for this module, not persistent: its ``redis://`` URL.

    A :class:`~asgi_stream.tools.redis_servers.RedisServer`, used by the Redis
    event log's tests and by the catalogue's jobs on Redis. Each module gets an
    empty server of its own, so no test sees another module's streams.
    """
    with RedisServer(tmp_path_factory.mktemp("redis"), persistent=False) as redis:
        yield redis.url
