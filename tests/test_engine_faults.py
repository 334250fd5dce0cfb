"""Fault tolerance on a real multi-node Ray: a head and two worker nodes on this machine, one killed mid-sweep.

The sweep must complete and every planned model must end with exactly one terminal ``models`` row.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from tests._engine_util import assert_one_terminal_row_each, write_dense_zoo
from ww_ray.config import RayConfig, parse_config
from ww_ray.engine import run_sweep
from ww_ray.engine.cluster import LOOPBACK, loopback_only
from ww_ray.spectral.presets import resolve_options
from ww_ray.store import open_pyarrow, read_table
from ww_ray.zoos.registry import enumerate_specs

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# Notice a dead node within a few seconds instead of the default ~half minute.
FAST_FAILURE_DETECTION = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
    "num_workers_soft_limit": 6,  # keep load workers warm (see ww_ray.engine.cluster)
}


@pytest.fixture
def three_node_cluster():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    with loopback_only():  # every node on 127.0.0.1; the driver joins it there
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "node_ip_address": LOOPBACK,
            "_system_config": FAST_FAILURE_DETECTION})
        workers = [cluster.add_node(num_cpus=1, object_store_memory=200 << 20, node_ip_address=LOOPBACK)
                   for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.WARNING, _node_ip_address=LOOPBACK)
        assert {node["NodeManagerAddress"] for node in ray.nodes()} == {LOOPBACK}
        try:
            yield cluster, workers
        finally:
            ray.shutdown()
            cluster.shutdown()


def _kill_after(cluster, node, out: Path, committed: int, state: dict) -> None:
    """Kill ``node`` once ``committed`` models have a committed ``models`` row; record how many had."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        done = open_pyarrow(str(out), "models").count_rows()  # the rows readers see, however batched
        if done >= committed:
            cluster.remove_node(node, allow_graceful=False)
            state["committed_at_kill"] = done
            return
        time.sleep(0.05)


def test_killing_a_worker_node_mid_sweep_still_ends_every_model_once(three_node_cluster, tmp_path, monkeypatch):
    cluster, workers = three_node_cluster
    monkeypatch.setenv("WW_RAY_COMMIT_BATCH", "2")  # batched commits (two models a file), the kill between two
    zoo = tmp_path / "zoo"
    count = 10
    write_dense_zoo(zoo, count=count, shapes=[(900, 600)] * 4, seed=100)
    specs = enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(zoo)}]}, base_dir=tmp_path))
    out = tmp_path / "out"
    state: dict = {}
    killer = threading.Thread(target=_kill_after, args=(cluster, workers[0], out, 2, state), daemon=True)
    killer.start()
    result = run_sweep(specs, resolve_options("paper"), str(out),
                       RayConfig(max_models_in_flight=3, max_retries=3), progress=False, restart_grace_s=10)
    killer.join(timeout=5)
    assert state.get("committed_at_kill", count) < count, "the worker node was not killed during the sweep"
    assert result.status == "completed" and result.planned == count
    assert result.pool["workers"] == 3  # one spectral worker per node's CPU
    raw = assert_one_terminal_row_each(out, {(zoo.name, f"model-{i:02d}") for i in range(count)})
    assert (raw.status == "ok").all(), raw[["model_id", "status", "error"]].to_string()
    layers = read_table(str(out), "layers")
    assert layers.groupby("model_id").size().tolist() == [4] * count
    assert (layers.status == "ok").all()
