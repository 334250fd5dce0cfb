"""The embedded local Ray of ``ww-ray sweep`` stays on loopback, with token authentication on (issue 12, item 9).

A real local sweep (``run_config`` starting its own Ray, as ``ww-ray sweep`` does) runs while a thread
samples, with psutil, every TCP connection of the processes this test started (the GCS, raylet,
agents and workers are its descendants): listening and established, each end must be 127.0.0.1.
"""
from __future__ import annotations

import ipaddress
import threading
import time

import psutil
import pytest

from tests._engine_util import assert_one_terminal_row_each, write_dense_zoo
from ww_ray.config import parse_config
from ww_ray.engine import run_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _is_loopback_v4(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped            # a dual-stack socket shows 127.0.0.1 as ::ffff:127.0.0.1
    return str(ip) == "127.0.0.1"


class ConnectionSampler(threading.Thread):
    """Record every inet connection of this process's descendants until stopped (bounded: 10 min)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.connections: dict[tuple, str] = {}   # (pid, status, laddr, raddr) -> process name
        self.ray_processes: set[str] = set()
        self.token_auth: list[bool] = []

    def run(self) -> None:
        me = psutil.Process()
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.sample(me)
            self.stop.wait(0.2)
        self.sample(me)

    def sample(self, me: psutil.Process) -> None:
        import ray

        if ray.is_initialized():
            from ray._private.authentication.authentication_utils import is_token_auth_enabled

            self.token_auth.append(is_token_auth_enabled())
        for process in [me, *me.children(recursive=True)]:
            try:
                name = process.name()
                for conn in process.net_connections(kind="inet"):
                    remote = (conn.raddr.ip, conn.raddr.port) if conn.raddr else None
                    self.connections[(process.pid, conn.status, (conn.laddr.ip, conn.laddr.port), remote)] = name
                    if process.pid != me.pid:
                        self.ray_processes.add(name)
            except psutil.Error:   # a worker that exited between listing and reading
                continue


def test_a_local_sweep_listens_and_talks_on_127_0_0_1_only(tmp_path):
    import ray

    if ray.is_initialized():
        ray.shutdown()         # the sweep must start its own Ray, the way `ww-ray sweep` does
    zoo = tmp_path / "zoo"
    write_dense_zoo(zoo, count=3, shapes=[(200, 120)] * 2, seed=7)
    config = parse_config({"zoos": [{"kind": "local", "path": str(zoo)}], "out": str(tmp_path / "out"),
                           "ray": {"max_models_in_flight": 2}}, base_dir=tmp_path)
    sampler = ConnectionSampler()
    sampler.start()
    try:
        result = run_config(config, progress=False)
    finally:
        sampler.stop.set()
        sampler.join(timeout=30)
    assert result.status == "completed" and result.counts == {"ok": 3, "failed": 0, "skipped": 0}
    raw = assert_one_terminal_row_each(tmp_path / "out", {("zoo", f"model-{i:02d}") for i in range(3)})
    assert (raw.status == "ok").all()
    assert {"gcs_server", "raylet"} <= sampler.ray_processes, sampler.ray_processes
    listening = [key for key in sampler.connections if key[1] == psutil.CONN_LISTEN]
    established = [key for key in sampler.connections if key[1] == psutil.CONN_ESTABLISHED]
    assert len(listening) >= 3 and len(established) >= 3, sampler.connections
    off_loopback = {key: name for key, name in sampler.connections.items()
                    if not _is_loopback_v4(key[2][0]) or (key[3] is not None and not _is_loopback_v4(key[3][0]))}
    assert not off_loopback, off_loopback
    assert sampler.token_auth and all(sampler.token_auth), "Ray's token authentication must stay on"
    assert not ray.is_initialized()
