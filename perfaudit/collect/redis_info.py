"""What the window cost Redis: command counts, new connections, keyspace hits, from INFO deltas.

One ``INFO all`` at start and one at stop, on a single connection opened before the baseline
(so its handshake is not in the window). Redis counts a command after running it, so the
stop reading contains exactly one command of ours, the start INFO, and no connection of ours:
both are subtracted and the deltas are exact. The same holds for ``total_reads_processed``
(one read of ours, the stop INFO): ``round_trips`` is the reads Redis did for its clients.
Pipelined commands arrive in one read, so ``total_commands / round_trips`` shows batching. ``INFO all`` (not three section calls) because
Redis 6.2 takes one section per call, and three calls would skew the sections against each other.
"""

from __future__ import annotations

from typing import Any

import redis

from perfaudit.collect.base import Result

_OWN_INFO_CALLS = 1  # the baseline INFO lands in the stop reading
_OWN_READS = 1  # the stop INFO's read is counted before it runs; the baseline's is in start


class RedisInfoDelta:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._client: redis.Redis | None = None
        self._start: dict[str, Any] | None = None

    def _connect(self) -> redis.Redis:
        # lib_name/lib_version=None: no CLIENT SETINFO round trips on connect.
        return redis.Redis.from_url(
            self.url,
            single_connection_client=True,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            lib_name=None,
            lib_version=None,
        )

    def start(self) -> None:
        self._client = self._connect()
        try:
            self._start = self._client.info("all")
        except BaseException:
            self._close()
            raise

    def stop(self) -> Result:
        if self._client is None or self._start is None:
            raise RuntimeError("RedisInfoDelta.stop() before start()")
        try:
            end = self._client.info("all")
            own_connections = 0
        except redis.ConnectionError:
            # Our connection died (Redis restarted?): read once more on a new one.
            self._close()
            self._client = self._connect()
            end = self._client.info("all")
            own_connections = 1
        finally:
            self._close()
        return delta(self._start, end, own_connections=own_connections)

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def delta(start: dict[str, Any], end: dict[str, Any], *, own_connections: int = 0) -> Result:
    """The window between two ``INFO all`` readings, minus the collector's own traffic."""
    restarted = start.get("run_id") != end.get("run_id")
    base = {} if restarted else start  # after a restart the counters began again at zero
    before, after = _cmdstats(base), _cmdstats(end)
    commands: dict[str, int] = {}
    usec: dict[str, int] = {}
    errors: dict[str, int] = {}
    for name, stat in after.items():
        prev = before.get(name, {})
        calls = int(stat.get("calls", 0)) - int(prev.get("calls", 0))
        if name == "info" and not restarted:
            calls -= _OWN_INFO_CALLS
        if calls > 0:
            commands[name] = calls
            usec[name] = int(stat.get("usec", 0)) - int(prev.get("usec", 0))
        failed = sum(int(stat.get(k, 0)) - int(prev.get(k, 0))
                     for k in ("failed_calls", "rejected_calls"))  # fmt: skip
        if failed > 0:
            errors[name] = failed

    def d(key: str) -> int:
        return int(end.get(key, 0)) - int(base.get(key, 0))

    own_commands = 0 if restarted else _OWN_INFO_CALLS
    return {
        "commands": dict(sorted(commands.items())),
        "command_usec": dict(sorted(usec.items())),
        "command_errors": dict(sorted(errors.items())),
        "total_commands": d("total_commands_processed") - own_commands,
        # Redis 6.2+; None on an older server that does not count reads.
        "round_trips": (
            d("total_reads_processed") - (0 if restarted else _OWN_READS)
            if "total_reads_processed" in end
            else None
        ),
        "connections_received": d("total_connections_received") - own_connections,
        "connected_clients": int(end.get("connected_clients", 0)) - 1,  # minus ours
        "keyspace_hits": d("keyspace_hits"),
        "keyspace_misses": d("keyspace_misses"),
        "expired_keys": d("expired_keys"),
        "evicted_keys": d("evicted_keys"),
        "restarted": restarted,
    }


def _cmdstats(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``cmdstat_setex`` -> ``setex`` (Redis 7 subcommands keep their ``client|list`` form)."""
    return {
        key.removeprefix("cmdstat_"): value
        for key, value in info.items()
        if key.startswith("cmdstat_") and isinstance(value, dict)
    }
