"""Nightly rescans end to end on a real local Ray (2 CPUs) against an offline, injected Hub client.

The Hub is ``tests._rescan_util.FakeHub``: real ``huggingface_hub`` ModelInfo / safetensors-metadata
objects over safetensors files the tests write; the Ray workers read the same files from a Hugging
Face cache layout with ``HF_HUB_OFFLINE=1``. One Ray instance serves the module; the killed rescan
is a child process joined to it.
"""
from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from tests._rescan_util import BASE_TIME, FakeHub, rescan_yaml
from ww_ray.analysis.regression import regress
from ww_ray.engine.cluster import LOOPBACK, loopback_only
from ww_ray.rescan import load_rescan_config, run_rescan
from ww_ray.rescan.watermark import previous_watermarks
from ww_ray.store import StoreRoot, read_manifests, read_table

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
OFFLINE_WORKERS = {"env_vars": {"HF_HUB_OFFLINE": "1"}}


@pytest.fixture(scope="module")
def local_ray():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    # address="local": never join another Ray that happens to run on this machine
    with loopback_only():  # on 127.0.0.1 only, like the embedded Ray of `ww-ray sweep`
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 runtime_env=OFFLINE_WORKERS, _node_ip_address=LOOPBACK)
    yield ray
    ray.shutdown()


def _config(hub: FakeHub, tmp: Path, rescan: dict | None = None, **zoo) -> Path:
    path = tmp / "rescan.yaml"
    path.write_text(rescan_yaml(hub, tmp / "out", rescan=rescan, **zoo))
    return path


def _rescan(path: Path, hub: FakeHub, **overrides):
    return run_rescan(load_rescan_config(path).with_overrides(**overrides), client=hub, progress=False)


def _keys(result) -> set[tuple[str, str]]:
    return {(model_id, revision) for _, model_id, revision in result.analysed}


def _watermark(out: Path):
    (value,) = previous_watermarks(read_manifests(str(out))).values()
    return value.at


def _hours(hours: float) -> dt.datetime:
    return BASE_TIME + dt.timedelta(hours=hours)


def test_first_second_third_rescan(local_ray, hub_online, tmp_path):
    hub = FakeHub(tmp_path)
    matching = {}
    for i, repo in enumerate(["acme/enc-a", "acme/enc-b", "lab/enc-c", "lab/mask-d"]):
        tag = "fill-mask" if repo.endswith("-d") else "feature-extraction"
        matching[repo] = hub.publish(repo, hours=i, seed=i, pipeline_tag=tag)
    hub.publish("other/enc-x", hours=4, seed=10)                                   # author not listed
    hub.publish("acme/rare", hours=5, seed=11, downloads=3)                        # below min_downloads
    hub.publish("acme/huge", hours=6, seed=12, shapes=[(1024, 512)])               # 2 MB > max_size
    hub.publish("lab/classifier", hours=7, seed=13, pipeline_tag="text-classification")  # tag not listed
    config = _config(hub, tmp_path, authors=["acme", "lab"], pipeline_tags=["feature-extraction", "fill-mask"],
                     min_downloads=100, max_size="500KB")
    out = tmp_path / "out"

    first = _rescan(config, hub)
    assert _keys(first) == {(repo, sha) for repo, sha in matching.items()}
    models = read_table(str(out), "models")
    assert sorted(models.model_id) == sorted(matching) and set(models.status) == {"ok"}
    assert (models.num_layers == 2).all() and models.alpha.notna().all()
    rejected = {r["model_id"]: r["reason"] for r in first.report["rejected"]}
    assert rejected == {"acme/rare": "below min_downloads", "acme/huge": "too large"}
    # one listing per (author, tag); the too-large model was judged from its safetensors header only
    listings = [c[1] for c in hub.calls if c[0] == "list_models"]
    assert sorted((c["author"], c["pipeline_tag"]) for c in listings) == sorted(
        (a, t) for a in ("acme", "lab") for t in ("feature-extraction", "fill-mask"))
    assert "acme/huge" in hub.described() and "acme/rare" not in hub.described()
    assert _watermark(out) == _hours(6)                   # newest examined: acme/huge
    report = first.report
    assert report["counts"]["analysed"] == 4 and report["counts"]["new_models"] == 4
    by_id = {m["model_id"]: m for m in report["models"]}
    stored = models.set_index("model_id")
    for repo in matching:
        assert by_id[repo]["metrics"]["alpha"] == pytest.approx(stored.loc[repo, "alpha"])
        assert by_id[repo]["new_model"] is True

    hub.calls.clear()
    second = _rescan(config, hub)
    assert second.analysed == [] and second.batches == []
    assert second.report["counts"]["analysed"] == 0
    assert hub.described() == []                          # nothing examined before is looked at again
    assert second.report["counts"]["listed"] == 0
    assert _watermark(out) == _hours(6)
    assert len(read_table(str(out), "models", latest=False)) == 4

    new_model = hub.publish("lab/enc-e", hours=8, seed=20)
    new_revision = hub.publish("acme/enc-a", hours=9, seed=21)
    third = _rescan(config, hub)
    assert _keys(third) == {("lab/enc-e", new_model), ("acme/enc-a", new_revision)}
    entries = {m["model_id"]: m for m in third.report["models"]}
    assert entries["lab/enc-e"]["new_model"] is True
    assert entries["acme/enc-a"]["new_model"] is False
    assert entries["acme/enc-a"]["previous_revisions"] == [matching["acme/enc-a"]]
    raw = read_table(str(out), "models", latest=False)
    assert len(raw) == 6 and raw.groupby(["model_id", "revision"]).size().max() == 1
    assert set(raw[raw.model_id == "acme/enc-a"].revision) == {matching["acme/enc-a"], new_revision}
    assert _watermark(out) == _hours(9)
    rescans = [m for m in read_manifests(str(out)) if m.get("kind") == "rescan"]
    assert [m["counts"]["analysed"] for m in rescans] == [4, 0, 2]


def test_killed_rescan_then_rerun(local_ray, hub_online, tmp_path):
    hub = FakeHub(tmp_path)
    first_sha = hub.publish("acme/m0", hours=0, seed=0)
    hub.publish("acme/m1", hours=1, seed=1)
    config = _config(hub, tmp_path, author="acme")
    out = tmp_path / "out"
    assert len(_rescan(config, hub).analysed) == 2
    assert _watermark(out) == _hours(1)

    expected = {repo: hub.publish(repo, hours=h, seed=10 + h) for h, repo in
                [(2, "acme/m2"), (3, "acme/m3"), (4, "acme/m4"), (5, "acme/m5"), (6, "acme/m0")]}
    state, marker = tmp_path / "hub.json", tmp_path / "killed-after"
    hub.save(state)
    address = local_ray.get_runtime_context().gcs_address
    child = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "_rescan_util.py"), str(state), str(config), address, "2", str(marker)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"})
    deadline = time.monotonic() + 150
    try:
        while not marker.exists():
            if child.poll() is not None:
                pytest.fail(f"the rescan ended before it could be killed: {child.stderr.read().decode()[-3000:]}")
            assert time.monotonic() < deadline, "the child rescan committed nothing in 150 s"
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stderr.close()
    killed = set(marker.read_text().split())
    assert len(killed) == 2 and killed <= set(expected) - {"acme/m0"}   # oldest first: not the newest revision
    assert _watermark(out) == _hours(1)                   # the killed rescan moved nothing
    assert sum(m.get("kind") == "rescan" for m in read_manifests(str(out))) == 1
    before = read_table(str(out), "models")
    assert set(before.model_id) == {"acme/m0", "acme/m1"} | killed

    rerun = _rescan(config, hub)
    assert _keys(rerun) == {(repo, sha) for repo, sha in expected.items() if repo not in killed}
    raw = read_table(str(out), "models", latest=False)
    keys = list(zip(raw.model_id, raw.revision))
    assert len(keys) == len(set(keys)) == 7               # nothing analysed twice
    assert set(keys) == {("acme/m0", first_sha), ("acme/m1", hub.current("acme/m1")["sha"]),
                         *expected.items()}               # nothing missed
    kept = raw[raw.model_id.isin(killed)].set_index("model_id").run_id.sort_index()
    assert (kept == before.set_index("model_id").loc[sorted(killed), "run_id"]).all()   # not redone
    assert _watermark(out) == _hours(6)
    assert _rescan(config, hub).analysed == []


def test_cap_and_time_budget_leave_the_rest_for_the_next_rescan(local_ray, hub_online, tmp_path):
    hub = FakeHub(tmp_path)
    shas = [hub.publish(f"acme/m{i}", hours=i, seed=i) for i in range(5)]
    config = _config(hub, tmp_path, rescan={"batch_size": 2}, author="acme")
    out = tmp_path / "out"

    capped = _rescan(config, hub, max_models=2)
    assert _keys(capped) == {("acme/m0", shas[0]), ("acme/m1", shas[1])}   # oldest first
    assert sorted(p["model_id"] for p in capped.report["pending"]) == ["acme/m2", "acme/m3", "acme/m4"]
    assert _watermark(out) == _hours(2)                   # held at the oldest model left over

    ticks = iter([0.0, 0.0] + [10.0] * 100)               # start, first batch in time, then the budget is gone
    budget = run_rescan(load_rescan_config(config).with_overrides(time_budget_s=5.0), client=hub,
                        progress=False, clock=lambda: next(ticks))
    assert len(budget.batches) == 1
    assert _keys(budget) == {("acme/m2", shas[2]), ("acme/m3", shas[3])}
    assert budget.report["pending"][0]["model_id"] == "acme/m4"
    assert budget.report["pending"][0]["why"] == "out of time (rescan.time_budget)"
    assert _watermark(out) == _hours(4)

    assert _keys(_rescan(config, hub)) == {("acme/m4", shas[4])}
    assert _watermark(out) == _hours(4)
    assert read_table(str(out), "models", latest=False).groupby("model_id").size().tolist() == [1] * 5


def test_failures_hold_the_watermark_then_are_given_up(local_ray, hub_online, tmp_path):
    hub = FakeHub(tmp_path)
    hub.publish("acme/good", hours=0, seed=0)
    broken = hub.publish("acme/broken", hours=1, seed=1)
    hub.publish("acme/later", hours=2, seed=2)
    # the workers' copy of the weights is corrupt (the header the Hub reports is fine)
    cached = hub.cache / "models--acme--broken" / "snapshots" / broken / "model.safetensors"
    cached.write_bytes(b"\x00" * 64)
    config = _config(hub, tmp_path, rescan={"max_failures": 2}, author="acme")
    out = tmp_path / "out"

    first = _rescan(config, hub)
    statuses = read_table(str(out), "models").set_index("model_id").status.to_dict()
    assert statuses == {"acme/good": "ok", "acme/broken": "failed", "acme/later": "ok"}
    assert [p["model_id"] for p in first.report["pending"]] == ["acme/broken"]
    assert _watermark(out) == _hours(1)
    entry = {m["model_id"]: m for m in first.report["models"]}["acme/broken"]
    assert entry["flags"][0].startswith("failed: ")

    second = _rescan(config, hub)                         # retried once more, fails again: given up
    assert _keys(second) == {("acme/broken", broken)}
    assert second.report["pending"] == [] and _watermark(out) == _hours(2)
    assert second.report["given_up"] == [{"source": "hf", "model_id": "acme/broken", "revision": broken}]
    third = _rescan(config, hub)
    assert third.analysed == []
    assert read_table(str(out), "models", latest=False).groupby("model_id").size().to_dict() == \
        {"acme/broken": 2, "acme/good": 1, "acme/later": 1}


def test_regressions_of_touched_series_refreshed_on_real_resnets(local_ray, hub_online, tmp_path, akamaster_dir,
                                                                   shared_models):
    """The four akamaster CIFAR-10 ResNets, published as Hub models, with their reported test errors."""
    import torch
    from safetensors.torch import save_file

    from ww_ray.zoos.checkpoint import iter_state_dict

    hub = FakeHub(tmp_path)
    rows = []
    with open(shared_models / "reported_accuracies.csv", newline="") as handle:
        reported = [r for r in csv.DictReader(handle) if r["source"] == "akamaster-resnet-cifar10"]
    assert len(reported) == 4
    for hours, row in enumerate(reported):
        folder = tmp_path / "weights" / row["model"]
        folder.mkdir(parents=True)
        tensors = {name: t.contiguous() for name, t in iter_state_dict(akamaster_dir / row["model"])
                   if isinstance(t, torch.Tensor) and t.is_floating_point()}
        save_file(tensors, str(folder / "model.safetensors"))
        (folder / "config.json").write_text('{"model_type": "resnet"}')
        repo = "akamaster/" + row["model"].split("-")[0]
        hub.publish(repo, hours=hours, folder=folder)
        rows.append({"model_id": repo, "dataset": row["dataset"], "architecture": row["architecture_series"],
                     "top1_error": row["top1_error_pct"]})
    metadata = tmp_path / "reported.csv"
    pd.DataFrame(rows).to_csv(metadata, index=False)
    config = _config(hub, tmp_path, author="akamaster", metadata=str(metadata))
    out = tmp_path / "out"

    result = _rescan(config, hub)
    assert len(result.analysed) == 4
    models = read_table(str(out), "models")
    assert set(models.status) == {"ok"} and set(models.dataset) == {"cifar10"}
    series = ["cifar10", reported[0]["architecture_series"]]
    assert result.report["regressions"]["series"] == [series]
    stored = read_table(str(out), "regressions")
    assert len(stored) == result.report["regressions"]["rows"] > 0
    assert set(stored.run_id) == {result.run_id}
    expected = regress(models).set_index("metric")
    for fit in stored.itertuples():
        assert fit.n == 4 and sorted(fit.model_ids) == sorted(r["model_id"] for r in rows)
        assert fit.r2 == pytest.approx(expected.loc[fit.metric, "r2"])
        assert fit.slope == pytest.approx(expected.loc[fit.metric, "slope"])


def test_rescan_on_a_non_local_pyarrow_filesystem(local_ray, hub_online, tmp_path):
    """The dataset root on an fsspec in-memory filesystem (wrapped by pyarrow): writes, resume, watermark."""
    import fsspec
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    memory = fsspec.filesystem("memory")
    if memory.exists("/ww-rescan"):
        memory.rm("/ww-rescan", recursive=True)
    root = StoreRoot(PyFileSystem(FSSpecHandler(memory)), "/ww-rescan", "memory://ww-rescan")
    hub = FakeHub(tmp_path)
    shas = [hub.publish(f"acme/m{i}", hours=i, seed=i) for i in range(3)]
    config = load_rescan_config(_config(hub, tmp_path, author="acme"))

    def rescan(**overrides):
        return run_rescan(config.with_overrides(**overrides), client=hub, root=root, progress=False)

    assert _keys(rescan(max_models=2)) == {("acme/m0", shas[0]), ("acme/m1", shas[1])}
    assert _keys(rescan()) == {("acme/m2", shas[2])}
    assert rescan().analysed == []
    assert not (tmp_path / "out").exists()                # nothing went to the config's local out:
    files = [f for f in root.filesystem.get_file_info(pafs.FileSelector(root.path, recursive=True))
             if f.type == pafs.FileType.File]
    assert files and not [f.path for f in files if f.base_name.startswith(".")]   # no temp file left
    raw = read_table(root, "models", latest=False)
    assert sorted(raw.model_id) == ["acme/m0", "acme/m1", "acme/m2"]
    assert [w.at for w in previous_watermarks(read_manifests(root)).values()] == [_hours(2)]
    memory.rm("/ww-rescan", recursive=True)
