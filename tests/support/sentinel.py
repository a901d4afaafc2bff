"""A Redis primary, its replica and three sentinels on spare loopback ports, for failover tests.

Debian's ``redis-sentinel`` is used when installed (.ci/run installs it); otherwise
``redis-server --sentinel``, the same program in sentinel mode. Nothing is kept on disk.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from infra.embedded_redis import _die_with_parent, _ping_tcp, free_port, redis_executable

SERVICE = "mymaster"


class SentinelStack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self, timeout: float = 30) -> SentinelStack:
        primary, replica = self.data_ports
        self._server(primary)
        self._server(replica, "--replicaof", "127.0.0.1", str(primary))
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            sentinel = shutil.which("redis-sentinel")
            args = (
                [sentinel, str(conf)] if sentinel else [redis_executable(), str(conf), "--sentinel"]
            )
            self._spawn(port, args)
        self._wait(self._ready, timeout, "the replica in sync and the sentinels aware of all")
        return self

    def _server(self, port: int, *extra: str) -> None:
        data = self.workdir / f"redis-{port}"
        data.mkdir(exist_ok=True)
        args = [redis_executable(), "--port", str(port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(data), *extra]
        self._spawn(port, args)

    def _spawn(self, port: int, args: list[str]) -> None:
        log = open(self.workdir / f"{port}.log", "ab")  # noqa: SIM115 - lives with the process
        self.procs[port] = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        self._wait(lambda: _ping_tcp(port), 10, f"port {port} answering")

    def sentinel(self, port: int | None = None) -> redis.Redis:
        return redis.Redis(port=port or self.sentinel_ports[0], socket_timeout=2)

    def _ready(self) -> bool:
        replica = redis.Redis(port=self.data_ports[1], socket_timeout=2)
        if replica.info("replication").get("master_link_status") != "up":
            return False
        for port in self.sentinel_ports:
            s = self.sentinel(port)
            if len(s.sentinel_slaves(SERVICE)) < 1 or len(s.sentinel_sentinels(SERVICE)) < 2:
                return False
        return True

    def primary_port(self) -> int:
        return int(self.sentinel().sentinel_get_master_addr_by_name(SERVICE)[1])

    def failover(self) -> None:
        """SENTINEL FAILOVER: the replica is promoted, the primary demoted."""
        self.sentinel().execute_command("SENTINEL", "FAILOVER", SERVICE)

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)

    @staticmethod
    def _wait(condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {timeout}s: {what}")
            time.sleep(0.1)
