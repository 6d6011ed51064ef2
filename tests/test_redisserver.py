"""The tests' own redis-server (tests/redisserver.py): real, on loopback, empty, and stoppable mid-test."""

from __future__ import annotations

import socket

import pytest
from redisserver import _command, redis_server


def test_fixture_serves_an_empty_database(redis_url: str) -> None:
    """The redis_url fixture names a live server on 127.0.0.1 whose database starts empty."""
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    assert redis_url.startswith("redis://127.0.0.1:")
    assert _command(port, b"DBSIZE") == b":0"
    assert _command(port, b"SET leftover 1") == b"+OK"


def test_the_next_test_sees_no_keys_of_the_last(redis_url: str) -> None:
    """Keys a test wrote are gone for the next one (FLUSHALL between tests)."""
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    assert _command(port, b"EXISTS leftover") == b":0"


def test_stop_refuses_connections_and_start_comes_back_empty_on_the_same_port() -> None:
    """A stopped server refuses connections; restarted, it listens on the same port and has kept nothing."""
    with redis_server() as server:
        port = server.port
        assert _command(port, b"SET k v") == b"+OK"
        server.kill()
        assert not server.running
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        server.start()
        assert server.port == port
        assert _command(port, b"EXISTS k") == b":0"
    assert not server.running
