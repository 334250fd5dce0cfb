"""Compaction keeps exactly the rows readers saw, is atomic when killed, and is safe beside a looping reader;
batched commits; a writer killed between its temp file and its rename (issue 12 item 8)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from tests._store_util import HookedLocalHandler
from ww_ray.store import (
    ModelCommitter, StoreRoot, commit_model, compact, new_run_id, open_dataset, read_table, vacuum, visible_files,
)
from ww_ray.store.snapshot import COMPACTED_SUFFIX

REPO = Path(__file__).resolve().parents[1]
LAYER_KEY = ["source", "model_id", "revision", "run_id", "commit_id", "layer_index"]


def _model(i: int, run_id: str, revision: str = "r1", dataset: str = "cifar10") -> dict:
    return {"source": "zoo", "model_id": f"m{i:03d}", "revision": revision, "run_id": run_id, "status": "ok",
            "dataset": dataset, "architecture": f"arch{i % 3}", "alpha": 2.0 + i / 100}


def _layers(i: int, count: int = 4) -> list[dict]:
    return [{"layer_index": k, "layer_name": f"l{k}", "alpha": 2.0 + i / 100 + k / 10} for k in range(count)]


def _build(root: Path, models: int = 12) -> None:
    """Three runs: batched commits, single commits, re-analysed models and an orphan layers file."""
    run1, run2, run3 = new_run_id(), new_run_id(), new_run_id()
    with ModelCommitter(root, max_models=5) as committer:
        for i in range(models):
            committer.add(_layers(i), _model(i, run1, dataset="cifar10" if i % 2 else "cifar100"))
    for i in range(0, models, 3):  # re-analysed: a newer row for the same key
        commit_model(root, _layers(i, 3), _model(i, run2, dataset="cifar10" if i % 2 else "cifar100"))
    commit_model(root, _layers(99), _model(99, run3, revision="r2"))
    # an orphan: a layers file whose models row never came (a writer killed between the two files)
    handler = HookedLocalHandler(on_move=lambda src, dest: _fail_on_models(dest))
    with pytest.raises(RuntimeError):
        commit_model(StoreRoot(pafs.PyFileSystem(handler), str(root), str(root)), _layers(50), _model(50, run3))


def _fail_on_models(dest: str) -> None:
    if "/models/" in dest:
        raise RuntimeError("killed before the models row")


def _state(root: Path) -> dict:
    con = open_dataset(root)
    layers_all = con.sql("SELECT * FROM layers_all").df()
    return {
        "models": read_table(root, "models").sort_values(["model_id", "revision"]).reset_index(drop=True),
        "layers": read_table(root, "layers").sort_values(LAYER_KEY).reset_index(drop=True),
        "models_all": len(read_table(root, "models", latest=False)),
        "layers_all": len(layers_all),
        "layers_all_unique": len(layers_all.drop_duplicates(LAYER_KEY)),
        "duck_models": con.sql("SELECT count(*) FROM models").fetchall()[0][0],
        "duck_layers": con.sql("SELECT count(*) FROM layers").fetchall()[0][0],
    }


def _assert_same(before: dict, after: dict, raw_layers: bool = True) -> None:
    assert before["models"].equals(after["models"])
    assert before["layers"].equals(after["layers"])
    for key in ("models_all", "duck_models", "duck_layers") + (("layers_all",) if raw_layers else ()):
        assert before[key] == after[key], key
    assert after["layers_all"] == after["layers_all_unique"]  # no duplicate layer row anywhere


def test_compaction_keeps_exactly_the_rows_readers_saw(tmp_path: Path) -> None:
    _build(tmp_path)
    before = _state(tmp_path)
    assert before["duck_models"] == 13 and before["models_all"] == 17
    assert before["duck_layers"] == len(before["layers"]) == 8 * 4 + 4 * 3 + 4  # latest rows only
    files_before = len(visible_files(tmp_path, "layers")) + len(visible_files(tmp_path, "models"))
    report = compact(tmp_path, retain_s=0)
    assert report.files_in == files_before and report.files_out == 4  # 2 tables x 2 partitions
    _assert_same(before, _state(tmp_path))
    assert all(p.endswith(COMPACTED_SUFFIX) for p in visible_files(tmp_path, "layers"))
    leftovers = [p for p in (tmp_path / "layers").rglob("*.parquet") if not p.name.endswith(COMPACTED_SUFFIX)]
    assert leftovers == []  # retain_s=0: replaced files deleted at once
    # more runs, compacted again: the earlier output is an input now; its manifest is retired
    commit_model(tmp_path, _layers(1, 2), _model(1, new_run_id(), dataset="cifar10"))
    before = _state(tmp_path)
    compact(tmp_path, retain_s=0)
    _assert_same(before, _state(tmp_path))
    # the first manifest still vouches for its cifar100 output; the second for the new cifar10 one
    assert len(list((tmp_path / "layers" / "_compactions").glob("*.json"))) == 2
    commit_model(tmp_path, _layers(2, 2), _model(2, new_run_id(), dataset="cifar100"))
    compact(tmp_path, retain_s=0)  # now both of the first one's outputs are replaced and gone: retired
    assert len(list((tmp_path / "layers" / "_compactions").glob("*.json"))) == 2
    # one model's layers: a filter on model_id reads it back exactly
    con = open_dataset(tmp_path)
    assert con.sql("SELECT count(*) FROM layers WHERE model_id = 'm001'").fetchall()[0][0] == 2
    assert compact(tmp_path, retain_s=0).files_in == 0  # nothing left to do


def test_compaction_killed_before_its_commit_reads_the_same_and_a_rerun_finishes(tmp_path: Path) -> None:
    _build(tmp_path)
    before = _state(tmp_path)

    def die_at_manifest(src: str, dest: str) -> None:
        if "/_compactions/" in dest:
            raise RuntimeError("killed before the manifest")

    killed = StoreRoot(pafs.PyFileSystem(HookedLocalHandler(on_move=die_at_manifest, delete_enabled=False)),
                       str(tmp_path), str(tmp_path))
    with pytest.raises(RuntimeError):
        compact(killed, retain_s=0)
    assert list((tmp_path / "models").rglob(f"*{COMPACTED_SUFFIX}"))  # outputs written, never committed
    _assert_same(before, _state(tmp_path))
    compact(tmp_path, retain_s=0)  # the rerun finishes it
    _assert_same(before, _state(tmp_path))
    assert vacuum(tmp_path, older_than_s=0).compacted_away  # the dead outputs of the killed run
    assert all(len(visible_files(tmp_path, t)) == 2 for t in ("layers", "models"))
    assert sorted(p.name for p in (tmp_path / "layers").rglob("*.parquet")) == \
        sorted(p.rpartition("/")[2] for p in visible_files(tmp_path, "layers"))
    _assert_same(before, _state(tmp_path))


def test_compaction_killed_after_its_commit_reads_the_same(tmp_path: Path) -> None:
    _build(tmp_path)
    before = _state(tmp_path)
    no_deletes = StoreRoot(pafs.PyFileSystem(HookedLocalHandler(delete_enabled=False)), str(tmp_path), str(tmp_path))
    compact(no_deletes, retain_s=0)  # committed, but none of the replaced files deleted (as if killed)
    _assert_same(before, _state(tmp_path))
    vacuum(tmp_path, older_than_s=0)  # deletes the replaced inputs
    _assert_same(before, _state(tmp_path))


def test_a_reader_looping_during_compactions_never_sees_duplicates_or_missing_rows(tmp_path: Path) -> None:
    _build(tmp_path, models=30)
    expected = _state(tmp_path)
    seen, errors, stop = [], [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                con = open_dataset(tmp_path)
                seen.append((con.sql("SELECT count(*) FROM models").fetchall()[0][0],
                             con.sql("SELECT count(*) FROM layers_all").fetchall()[0][0],
                             len(read_table(tmp_path, "layers"))))
            except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(6):  # compactions and re-compactions, inputs kept for in-flight readers
            commit_model(tmp_path, _layers(7, 4), _model(7, new_run_id(), dataset="cifar10"))
            compact(tmp_path)
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors, errors[:3]
    assert len(seen) >= 3
    models, layers_all, layers = zip(*seen)
    assert set(models) == {expected["duck_models"]}  # re-analysis of m007 adds no model
    assert list(layers_all) == sorted(layers_all)  # grows with each commit, never shrinks or doubles
    assert min(layers_all) >= expected["layers_all"] and max(layers_all) <= expected["layers_all"] + 6 * 4
    assert set(layers) <= {len(expected["layers"]) - 4 + 4, len(expected["layers"])}


_KILLED_WRITER = textwrap.dedent("""
    import sys
    from ww_ray.store import ModelCommitter
    root, run_id = sys.argv[1], sys.argv[2]
    with ModelCommitter(root, max_models=10) as committer:
        for i in range(3):
            committer.add([{"layer_index": k, "alpha": 3.0 + k} for k in range(5)],
                          {"source": "zoo", "model_id": f"new{i}", "revision": "r", "run_id": run_id,
                           "status": "ok", "dataset": "cifar10"})
""")


@pytest.mark.parametrize("kill_at", [1, 2])  # 1: the layers file's rename, 2: the models file's rename
def test_a_writer_killed_between_temp_file_and_rename(tmp_path: Path, kill_at: int) -> None:
    _build(tmp_path)
    before = _state(tmp_path)
    run_id = new_run_id()
    env = {**os.environ, "PYTHONPATH": str(REPO), "WW_RAY_TEST_KILL_BEFORE_RENAME": str(kill_at)}
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path), run_id], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == 137, killed.stderr
    assert list(tmp_path.rglob(".*.tmp"))  # the temp file it was about to rename is left behind
    # ... and nothing of the killed batch is visible (layers_all, every raw row, may show its orphan layers)
    _assert_same(before, _state(tmp_path), raw_layers=False)
    env.pop("WW_RAY_TEST_KILL_BEFORE_RENAME")
    rerun = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path), new_run_id()], env=env,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    models = read_table(tmp_path, "models", latest=False)
    new = models[models.model_id.str.startswith("new")]
    assert sorted(new.model_id) == ["new0", "new1", "new2"] and (new.status == "ok").all()  # one row each
    assert read_table(tmp_path, "layers").query("model_id.str.startswith('new')").shape[0] == 15
    report = vacuum(tmp_path, older_than_s=0)
    assert report.temp_files and not list(tmp_path.rglob(".*.tmp"))
    assert len(report.orphan_layers_files) == (1 if kill_at == 2 else 0) + 1  # + the one _build made
