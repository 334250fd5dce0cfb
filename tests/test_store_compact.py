"""Compaction keeps exactly the rows readers saw, is atomic when killed, and is safe beside a looping reader;
batched commits; a writer killed between its temp file and its rename (issue 12 item 8).

Every test runs twice: on a local folder and on ``s3://`` served by a real S3-protocol server (moto's
server mode on 127.0.0.1), where the "rename" of an atomic write is a server-side copy."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests._store_util import StoreCase, hooked_root, moto_s3_server, s3_uri
from ww_ray.store import (
    CommitError, ModelCommitter, commit_model, compact, new_run_id, open_dataset, read_table, vacuum, visible_files,
)
from ww_ray.store.snapshot import COMPACTED_SUFFIX

REPO = Path(__file__).resolve().parents[1]
LAYER_KEY = ["source", "model_id", "revision", "run_id", "commit_id", "layer_index"]


def _model(i: int, run_id: str, revision: str = "r1", dataset: str = "cifar10") -> dict:
    return {"source": "zoo", "model_id": f"m{i:03d}", "revision": revision, "run_id": run_id, "status": "ok",
            "dataset": dataset, "architecture": f"arch{i % 3}", "alpha": 2.0 + i / 100}


def _layers(i: int, count: int = 4) -> list[dict]:
    return [{"layer_index": k, "layer_name": f"l{k}", "alpha": 2.0 + i / 100 + k / 10} for k in range(count)]


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def case(request, tmp_path: Path) -> StoreCase:
    if request.param == "local":
        return StoreCase("local", str(tmp_path / "root"))
    return StoreCase("s3", s3_uri(request.getfixturevalue("s3_endpoint")))


def _build(root: str, models: int = 12) -> None:
    """Three runs: batched commits, single commits, re-analysed models and an orphan layers file."""
    run1, run2, run3 = new_run_id(), new_run_id(), new_run_id()
    with ModelCommitter(root, max_models=5) as committer:
        for i in range(models):
            committer.add(_layers(i), _model(i, run1, dataset="cifar10" if i % 2 else "cifar100"))
    for i in range(0, models, 3):  # re-analysed: a newer row for the same key
        commit_model(root, _layers(i, 3), _model(i, run2, dataset="cifar10" if i % 2 else "cifar100"))
    commit_model(root, _layers(99), _model(99, run3, revision="r2"))
    # an orphan: a layers file whose models row never came (a writer killed between the two files)
    hooked, _ = hooked_root(root, on_move=lambda src, dest: _fail_on_models(dest))
    with pytest.raises(RuntimeError):
        commit_model(hooked, _layers(50), _model(50, run3))


def _fail_on_models(dest: str) -> None:
    if "/models/" in dest:
        raise RuntimeError("killed before the models row")


def _state(root: str) -> dict:
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


def test_compaction_keeps_exactly_the_rows_readers_saw(case: StoreCase) -> None:
    _build(case.uri)
    before = _state(case.uri)
    assert before["duck_models"] == 13 and before["models_all"] == 17
    assert before["duck_layers"] == len(before["layers"]) == 8 * 4 + 4 * 3 + 4  # latest rows only
    files_before = len(visible_files(case.uri, "layers")) + len(visible_files(case.uri, "models"))
    report = compact(case.uri, retain_s=0)
    assert report.files_in == files_before and report.files_out == 4  # 2 tables x 2 partitions
    _assert_same(before, _state(case.uri))
    assert all(p.endswith(COMPACTED_SUFFIX) for p in visible_files(case.uri, "layers"))
    leftovers = [p for p in case.files("layers", ".parquet") if not p.endswith(COMPACTED_SUFFIX)]
    assert leftovers == []  # retain_s=0: replaced files deleted at once
    # more runs, compacted again: the earlier output is an input now; its manifest is retired
    commit_model(case.uri, _layers(1, 2), _model(1, new_run_id(), dataset="cifar10"))
    before = _state(case.uri)
    compact(case.uri, retain_s=0)
    _assert_same(before, _state(case.uri))
    # the first manifest still vouches for its cifar100 output; the second for the new cifar10 one
    assert len(case.files("layers/_compactions", ".json")) == 2
    commit_model(case.uri, _layers(2, 2), _model(2, new_run_id(), dataset="cifar100"))
    compact(case.uri, retain_s=0)  # now both of the first one's outputs are replaced and gone: retired
    assert len(case.files("layers/_compactions", ".json")) == 2
    # one model's layers: a filter on model_id reads it back exactly
    con = open_dataset(case.uri)
    assert con.sql("SELECT count(*) FROM layers WHERE model_id = 'm001'").fetchall()[0][0] == 2
    assert compact(case.uri, retain_s=0).files_in == 0  # nothing left to do


def test_compaction_killed_before_its_commit_reads_the_same_and_a_rerun_finishes(case: StoreCase) -> None:
    _build(case.uri)
    before = _state(case.uri)

    def die_at_manifest(src: str, dest: str) -> None:
        if "/_compactions/" in dest:
            raise RuntimeError("killed before the manifest")

    killed, _ = hooked_root(case.uri, on_move=die_at_manifest, delete_enabled=False)
    with pytest.raises(RuntimeError):
        compact(killed, retain_s=0)
    assert case.files("models", COMPACTED_SUFFIX)  # outputs written, never committed
    _assert_same(before, _state(case.uri))
    compact(case.uri, retain_s=0)  # the rerun finishes it
    _assert_same(before, _state(case.uri))
    assert vacuum(case.uri, older_than_s=0).compacted_away  # the dead outputs of the killed run
    assert all(len(visible_files(case.uri, t)) == 2 for t in ("layers", "models"))
    assert sorted(p.rpartition("/")[2] for p in case.files("layers", ".parquet")) == \
        sorted(p.rpartition("/")[2] for p in visible_files(case.uri, "layers"))
    _assert_same(before, _state(case.uri))


def test_compaction_killed_after_its_commit_reads_the_same(case: StoreCase) -> None:
    _build(case.uri)
    before = _state(case.uri)
    no_deletes, _ = hooked_root(case.uri, delete_enabled=False)
    compact(no_deletes, retain_s=0)  # committed, but none of the replaced files deleted (as if killed)
    _assert_same(before, _state(case.uri))
    vacuum(case.uri, older_than_s=0)  # deletes the replaced inputs
    _assert_same(before, _state(case.uri))


def test_a_reader_looping_during_compactions_never_sees_duplicates_or_missing_rows(case: StoreCase) -> None:
    _build(case.uri, models=30 if case.kind == "local" else 12)
    expected = _state(case.uri)
    seen, errors, stop = [], [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                con = open_dataset(case.uri)
                seen.append((con.sql("SELECT count(*) FROM models").fetchall()[0][0],
                             con.sql("SELECT count(*) FROM layers_all").fetchall()[0][0],
                             len(read_table(case.uri, "layers"))))
            except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(6):  # compactions and re-compactions, inputs kept for in-flight readers
            commit_model(case.uri, _layers(7, 4), _model(7, new_run_id(), dataset="cifar10"))
            compact(case.uri)
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
def test_a_writer_killed_between_temp_file_and_rename(case: StoreCase, kill_at: int) -> None:
    _build(case.uri)
    before = _state(case.uri)
    run_id = new_run_id()
    env = {**os.environ, "PYTHONPATH": str(REPO), "WW_RAY_TEST_KILL_BEFORE_RENAME": str(kill_at)}
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(case.uri), run_id], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == 137, killed.stderr
    assert case.temp_files()  # the temp file it was about to rename (copy, on S3) is left behind
    # ... and nothing of the killed batch is visible (layers_all, every raw row, may show its orphan layers)
    _assert_same(before, _state(case.uri), raw_layers=False)
    env.pop("WW_RAY_TEST_KILL_BEFORE_RENAME")
    rerun = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(case.uri), new_run_id()], env=env,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    models = read_table(case.uri, "models", latest=False)
    new = models[models.model_id.str.startswith("new")]
    assert sorted(new.model_id) == ["new0", "new1", "new2"] and (new.status == "ok").all()  # one row each
    assert read_table(case.uri, "layers").query("model_id.str.startswith('new')").shape[0] == 15
    report = vacuum(case.uri, older_than_s=0)
    assert report.temp_files and not case.temp_files()
    assert len(report.orphan_layers_files) == (1 if kill_at == 2 else 0) + 1  # + the one _build made


def test_a_compaction_that_loses_a_race_to_another_changes_nothing(case: StoreCase) -> None:
    # Object stores have no lock: two hosts may compact at once. The one whose inputs the other
    # claimed first gives up at its commit point (deleting its outputs) instead of doubling rows.
    from ww_ray.store.compact import CompactionReport, _compact_table

    _build(case.uri)
    before = _state(case.uri)
    raced = []

    def other_host_compacts_first(src: str, dest: str) -> None:
        if "/models/" in dest and dest.endswith(COMPACTED_SUFFIX) and not raced:  # while the loser writes
            raced.append(dest)
            _compact_table(case.root, "models", CompactionReport(), 2)  # the other host, unhooked

    loser, _ = hooked_root(case.uri, on_move=other_host_compacts_first)
    with pytest.raises(RuntimeError, match="another compaction committed"):
        compact(loser, retain_s=0, tables=("models",))
    assert raced
    _assert_same(before, _state(case.uri))
    assert len(case.files("models/_compactions", ".json")) == 1  # only the winner's manifest
    assert len(case.files("models", COMPACTED_SUFFIX)) == 2  # the winner's outputs; the loser's were deleted


def test_a_batch_that_cannot_be_written_says_which_models_were(case: StoreCase) -> None:
    run_id = new_run_id()

    def refuse_cifar100(src: str, dest: str) -> None:
        if "dataset=cifar100" in dest and "/models/" in dest:
            raise OSError("disk full")

    hooked, _ = hooked_root(case.uri, on_move=refuse_cifar100)
    committer = ModelCommitter(hooked, max_models=100)
    for i in range(6):
        committer.stage(_layers(i), _model(i, run_id, dataset="cifar10" if i % 2 else "cifar100"))
    with pytest.raises(CommitError) as caught:
        committer.flush()
    assert sorted(r["model_id"] for r in caught.value.written) == ["m001", "m003", "m005"]
    assert sorted(r["model_id"] for r in caught.value.unwritten) == ["m000", "m002", "m004"]
    assert len(committer) == 0 and committer.committed == 3
    assert sorted(read_table(case.uri, "models").model_id) == ["m001", "m003", "m005"]
    assert sorted(set(read_table(case.uri, "layers").model_id)) == ["m001", "m003", "m005"]  # orphans hidden
    # a model whose rows do not fit the schema: a failed row, none of its layers, the others intact
    bad = ModelCommitter(case.uri, max_models=100)
    bad.stage(_layers(7), _model(7, run_id))
    bad.stage([{"layer_index": 0, "N": "not a number"}], _model(8, run_id))
    written = {r["model_id"]: r for r in bad.flush()}
    assert written["m007"]["status"] == "ok" and written["m008"]["status"] == "failed"
    assert "cannot be cast" in written["m008"]["error"]
    layers = read_table(case.uri, "layers")
    assert "m008" not in set(layers.model_id) and (layers.model_id == "m007").sum() == 4
