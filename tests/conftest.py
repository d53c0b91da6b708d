from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support import PostgresServer, RedisServer

# Property tests keep no example database in the checkout, and their example counts are
# set per test, small enough that the suite stays fast.
settings.register_profile("ladle", database=None, deadline=None)
settings.load_profile("ladle")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server for the session; tests use their own db or flush it."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), "--enable-debug-command", "local")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_conn(redis_server: RedisServer) -> Iterator[str]:
    """A connection string to an empty database on the private server."""
    import redis

    client = redis.Redis(port=redis_server.port)
    client.flushall()
    yield redis_server.connection_string
    client.flushall()
    client.close()


@pytest.fixture(params=["sqlite", "redis"])
def online_store_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    """Each test that takes this runs once per online store."""
    if request.param == "sqlite":
        return {"type": "sqlite", "path": "data/online.db"}
    conn = request.getfixturevalue("redis_conn")
    return {"type": "redis", "connection_string": conn}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL cluster for the session; each test takes a new database."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL (with password) of a new empty database; the server is running again
    afterwards even if the test stopped it."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        if not postgres_server.running:
            postgres_server.start()
