"""The engine's pieces that need no cluster: sharding, planning, sizing, statuses, summaries, configs."""
from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest

from ww_ray.config import RayConfig, load_config
from ww_ray.errors import ClusterError
from ww_ray.engine.cluster import plan_pool
from ww_ray.engine.outcome import decide_status, model_row, terminal_row
from ww_ray.engine.plan import (
    LOAD_MEMORY_BASE,
    SHARD_BYTES,
    UNKNOWN_SIZE_BYTES,
    load_memory,
    model_key,
    plan_models,
    planned_bytes,
    shard_count,
)
from ww_ray.engine.progress import format_summary
from ww_ray.engine.results import ModelResult, SweepResult
from ww_ray.engine.scheduler import deferred_interrupt
from ww_ray.engine.shards import split_by_cost
from ww_ray.spectral.metrics import ANALYZER_VERSION
from ww_ray.spectral.presets import resolve_options
from ww_ray.store.schema import MODELS_SCHEMA
from ww_ray.zoos.spec import ModelSpec

REPO = Path(__file__).resolve().parents[1]


# ---- shards ------------------------------------------------------------------------------------

def test_split_by_cost_covers_every_position_once_and_balances():
    costs = [float(c) for c in [90, 10, 40, 40, 30, 20, 20, 10, 5, 5, 0, 0]]
    shards = split_by_cost(costs, num_shards=3, min_split_cost=0)
    assert sorted(p for shard in shards for p in shard) == list(range(len(costs)))
    assert all(shard == sorted(shard) for shard in shards)
    totals = [sum(costs[p] for p in shard) for shard in shards]
    assert max(totals) <= 4 / 3 * max(sum(costs) / 3, max(costs))  # LPT's guarantee
    assert totals == [90.0, 90.0, 90.0]


def test_small_models_stay_one_shard_and_empty_models_have_none():
    assert split_by_cost([1e6, 2e6], num_shards=8) == [[0, 1]]
    assert split_by_cost([], num_shards=4) == []
    assert split_by_cost([5.0, 5.0, 5.0], num_shards=8, min_split_cost=0) == [[0], [1], [2]]
    with pytest.raises(ValueError):
        split_by_cost([1.0], num_shards=0)


# ---- planning ----------------------------------------------------------------------------------

def _spec(model_id: str, **fields) -> ModelSpec:
    return ModelSpec(source="zoo", model_id=model_id, **fields)


def test_planned_size_prefers_file_size_then_estimates():
    assert planned_bytes(_spec("a", size_bytes=123)) == 123
    assert planned_bytes(_spec("b", extra={"estimated_size_bytes": 456})) == 456
    assert planned_bytes(_spec("c", params=1000)) == 4000
    assert planned_bytes(_spec("d")) == UNKNOWN_SIZE_BYTES


def test_load_memory_grows_with_size_and_is_capped_to_the_largest_node():
    small = _spec("s", size_bytes=10 << 20)
    assert load_memory(small) == int(1.5 * (10 << 20) + LOAD_MEMORY_BASE)
    huge = _spec("h", size_bytes=50 << 30)
    assert load_memory(huge, node_memory=16e9) == int(0.8 * 16e9)


def test_a_safetensors_load_task_asks_for_planning_memory_only_whatever_the_model_size():
    llm = _spec("llm", size_bytes=140 << 30, extra={"files": ["model-00001-of-00002.safetensors",
                                                              "model-00002-of-00002.safetensors"]})
    assert load_memory(llm) == LOAD_MEMORY_BASE
    pickled = _spec("pt", size_bytes=1 << 30, extra={"files": ["model.pt"]})
    assert load_memory(pickled) > 1 << 30


def test_shard_count_follows_size_up_to_the_worker_count():
    assert shard_count(_spec("tiny", size_bytes=1 << 20), workers=8) == 1
    assert shard_count(_spec("mid", size_bytes=3 * SHARD_BYTES), workers=8) == 3
    assert shard_count(_spec("big", size_bytes=100 * SHARD_BYTES), workers=8) == 8


def test_plan_drops_done_keys_and_duplicates_and_keeps_order():
    specs = [_spec("a", revision="r1"), _spec("b", revision="r1"), _spec("a", revision="r1"),
             _spec("a", revision="r2"), _spec("c")]
    plan = plan_models(specs, done={("zoo", "b", "r1"), ("zoo", "c", "")})
    assert [model_key(s) for s in plan.todo] == [("zoo", "a", "r1"), ("zoo", "a", "r2")]
    assert [s.model_id for s in plan.already_done] == ["b", "c"]
    assert len(plan.duplicates) == 1


# ---- pool sizing -------------------------------------------------------------------------------

def _resources(cpus: float, gpus: float = 0.0) -> dict:
    total = {"CPU": cpus, "memory": 8e9}
    if gpus:
        total["GPU"] = gpus
    return {"total": total, "nodes": 1, "max_node_memory": 8e9}


def test_pool_on_two_cpus_uses_both_and_never_more_workers_than_useful():
    options = resolve_options("paper")
    pool = plan_pool(RayConfig(), options, _resources(2), max_useful=10)
    assert (pool.workers, pool.num_cpus, pool.num_gpus, pool.threads, pool.device) == (2, 1.0, 0.0, 1, "cpu")
    assert plan_pool(RayConfig(), options, _resources(2), max_useful=1).workers == 1


def test_more_workers_than_cpus_get_fractional_cpus():
    pool = plan_pool(RayConfig(workers=4), resolve_options("paper"), _resources(2), max_useful=10)
    assert pool.workers == 4 and pool.num_cpus == 0.5 and pool.threads == 1
    wide = plan_pool(RayConfig(cpus_per_worker=4), resolve_options("paper"), _resources(16), max_useful=10)
    assert (wide.workers, wide.num_cpus, wide.threads) == (4, 4.0, 4)


def test_gpus_are_used_when_present_unless_the_options_say_cpu():
    pool = plan_pool(RayConfig(), resolve_options("paper"), _resources(16, gpus=2), max_useful=10)
    assert (pool.workers, pool.num_gpus, pool.device) == (2, 1.0, "cuda")
    shared = plan_pool(RayConfig(gpus_per_worker=0.5), resolve_options("paper"), _resources(16, gpus=1), max_useful=10)
    assert (shared.workers, shared.num_gpus) == (2, 0.5)
    cpu_only = plan_pool(RayConfig(), resolve_options("paper", device="cpu"), _resources(16, gpus=2), max_useful=100)
    assert (cpu_only.workers, cpu_only.num_gpus, cpu_only.device) == (16, 0.0, "cpu")


def test_a_cluster_without_cpus_is_refused_with_a_clear_message():
    with pytest.raises(ClusterError, match="no CPUs"):
        plan_pool(RayConfig(), resolve_options("paper"), _resources(0), max_useful=1)


# ---- model status and rows ---------------------------------------------------------------------

def _row(status: str, index: int = 0, error: str | None = None, **metrics) -> dict:
    return {"layer_index": index, "layer_name": f"l{index}", "layer_type": "linear", "slice_id": None,
            "status": status, "error": error, **metrics}


def test_model_status_from_its_layer_rows():
    assert decide_status([_row("ok"), _row("skipped", 1, "M=10 < min_evals=50")]) == ("ok", None)
    status, error = decide_status([_row("ok"), _row("failed", 1, "weights contain NaN or Inf")])
    assert status == "ok" and error.startswith("1 of 2 matrices failed") and "NaN" in error
    status, error = decide_status([_row("failed", 0, "weights contain NaN or Inf")] * 2)
    assert status == "failed" and "no matrix could be analysed" in error
    status, error = decide_status([_row("skipped", 0, "M=10 < min_evals=50")])
    assert status == "skipped" and "min_evals" in error
    status, error = decide_status([])
    assert status == "failed" and "no layer weights" in error


def test_model_row_carries_spec_summary_status_and_timings():
    spec = ModelSpec(source="zoo", model_id="m", revision=None, dataset="cifar10", top1_error=7.5)
    rows = [_row("ok", 0, alpha=3.0, log_norm=1.0), _row("ok", 1, alpha=5.0, log_norm=2.0)]
    row = model_row(spec, rows, "run-1", resolve_options("paper"), timings={"load": 1.0, "compute": 2.0, "total": 4.0},
                    attempts=2)
    assert set(row) <= set(MODELS_SCHEMA.names)
    assert (row["revision"], row["status"], row["alpha"], row["num_layers"]) == ("", "ok", 4.0, 2)
    assert (row["seconds_load"], row["seconds_compute"], row["seconds_total"], row["attempts"]) == (1.0, 2.0, 4.0, 2)
    assert row["analyzer_version"] == ANALYZER_VERSION and row["preset"] == "paper" and row["top1_error"] == 7.5
    failed = terminal_row(spec, "failed", "x" * 5000, "run-1", resolve_options("ww"))
    assert failed["status"] == "failed" and len(failed["error"]) == 2000 and failed["preset"] == "ww"
    assert failed["num_layers"] == 0 and failed["attempts"] == 1


# ---- driver helpers ----------------------------------------------------------------------------

def test_ctrl_c_during_a_commit_is_held_until_the_commit_is_done():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            signal.raise_signal(signal.SIGINT)
            done.append("committed")
    assert done == ["committed"]


def test_summary_table_names_counts_slowest_models_failures_and_the_data():
    results = [
        ModelResult("zoo", "fast", "r", "ok", None, 1, matrices=10, seconds_total=1.0),
        ModelResult("zoo", "slow", "r", "ok", None, 1, matrices=20, seconds_total=9.0),
        ModelResult("hf", "org/x", "", "failed", "ZooUnavailableError: cannot reach the Hub; use a `kind: local` zoo", 1),
    ]
    result = SweepResult(run_id="run-1", root="/data/ww", status="completed", planned=3, already_done=4,
                         results=results, seconds=12.0,
                         pool={"workers": 2, "num_cpus": 1.0, "num_gpus": 0.0, "threads": 1, "device": "cpu"})
    text = format_summary(result)
    assert "3 planned, 2 ok, 1 failed, 0 skipped; 4 already done" in text
    assert text.index("zoo/slow") < text.index("zoo/fast")
    assert "hf/org/x" in text and "kind: local" in text
    assert "/data/ww" in text and "runs/run-1.json" in text
    assert result.counts == {"ok": 2, "failed": 1, "skipped": 0}


# ---- configs shipped with the repository -------------------------------------------------------

@pytest.mark.parametrize("name", ["quickstart", "pytorchcv-all", "hf-gpt"])
def test_shipped_configs_load_and_validate(name):
    config = load_config(REPO / "configs" / f"{name}.yaml")
    assert config.zoos and config.analysis.preset == "paper"
    assert Path(config.out) == (REPO / "ww-results").resolve()
    assert config.ray.model_timeout_s and config.ray.max_models_in_flight >= 1


def test_local_example_config_points_at_the_shared_akamaster_weights(akamaster_dir):
    config = load_config(REPO / "configs" / "local-example.yaml")
    zoo = config.zoos[0]
    assert Path(zoo.options["path"]) == akamaster_dir.resolve()
    assert Path(zoo.metadata).name == "reported_accuracies.csv"


def test_quickstart_selects_the_pytorchcv_cifar10_resnet_series():
    from ww_ray.zoos.registry import enumerate_specs

    specs = enumerate_specs(load_config(REPO / "configs" / "quickstart.yaml"))
    ids = [s.model_id for s in specs]
    assert ids[:3] == ["resnet20_cifar10", "resnet56_cifar10", "resnet110_cifar10"] and len(ids) == 8
    assert all(s.dataset == "cifar10" and not math.isnan(s.top1_error) for s in specs)


def test_lazy_plan_gives_an_embedding_sized_matrix_a_shard_of_its_own():
    from ww_ray.engine.shard_plan import MAX_SHARD_BYTES, SOLO_WIDENED_BYTES, LazyLayer, plan_shards
    from ww_ray.zoos.tensor_index import TensorEntry

    def layer(index: int, rows: int, cols: int) -> LazyLayer:
        entry = TensorEntry(file="m.safetensors", name=f"w{index}", shape=(rows, cols), dtype="BF16",
                            begin=0, end=2 * rows * cols)
        return LazyLayer(entry=entry, layer_name=f"w{index}", layer_index=index, kind="dense")

    # a 32000×2048 embedding and head (262 MB as float32) between 2048-wide blocks of 46 MB and 17 MB
    layers = [layer(0, 32000, 2048)] + [layer(1 + i, 5632 if i % 2 else 2048, 2048) for i in range(40)] \
        + [layer(41, 32000, 2048)]
    shards = plan_shards(layers, workers=2)
    assert [[l.layer_index for l in s.layers] for s in shards[:2]] == [[0], [41]]
    rest = shards[2:]
    assert len(rest) >= 2 and all(s.nbytes <= MAX_SHARD_BYTES for s in rest)
    assert all(4 * math.prod(l.entry.shape) < SOLO_WIDENED_BYTES for s in rest for l in s.layers)
    assert sorted(l.layer_index for s in shards for l in s.layers) == list(range(42))
