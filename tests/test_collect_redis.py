"""RedisInfoDelta against a real redis-server: deltas are exact, own traffic excluded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from perfaudit.collect import RedisInfoDelta
from perfaudit.collect.redis_info import delta
from perfaudit.stack.redis_server import redis_process


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = redis_process(tmp_path_factory.mktemp("redis"))
    proc.start()
    try:
        proc.wait_ready(10)
        yield url
    finally:
        proc.stop()


def client(url: str) -> redis.Redis:
    # No CLIENT SETINFO on connect, so the only commands are the ones the test sends.
    return redis.Redis.from_url(url, lib_name=None, lib_version=None)


def test_exact_command_and_connection_deltas(redis_url: str) -> None:
    collector = RedisInfoDelta(redis_url)
    collector.start()
    clients = [client(redis_url) for _ in range(5)]
    for i, c in enumerate(clients):  # every connection does work, so Redis has accepted it
        for j in range(2):
            c.setex(f"k{i}{j}", 60, "v")
            assert c.get(f"k{i}{j}") == b"v"
    for c in clients[1:]:
        c.close()
    result = collector.stop()
    clients[0].close()

    assert result["commands"] == {"setex": 10, "get": 10}
    assert result["total_commands"] == 20
    assert result["connections_received"] == 5
    assert result["keyspace_hits"] == 10 and result["keyspace_misses"] == 0
    assert result["connected_clients"] >= 1  # one client still open; the collector not counted
    assert set(result["command_usec"]) == {"setex", "get"}
    assert result["restarted"] is False


def test_an_empty_window_is_all_zero(redis_url: str) -> None:
    collector = RedisInfoDelta(redis_url)
    collector.start()
    result = collector.stop()
    assert result["commands"] == {}
    assert result["total_commands"] == 0 and result["connections_received"] == 0


def test_restart_inside_the_window_counts_from_zero() -> None:
    start = {"run_id": "a", "total_commands_processed": 500, "cmdstat_get": {"calls": 400}}
    end = {
        "run_id": "b",
        "total_commands_processed": 7,
        "total_connections_received": 2,
        "connected_clients": 2,
        "cmdstat_get": {"calls": 3, "usec": 9},
        "cmdstat_info": {"calls": 1, "usec": 20},
    }
    result = delta(start, end, own_connections=1)
    assert result["restarted"] is True
    assert result["commands"] == {"get": 3, "info": 1}
    assert result["total_commands"] == 7 and result["connections_received"] == 1
