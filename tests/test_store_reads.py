"""Store reads: latest-row semantics, resume keys, DuckDB views with hive partitioning, pyarrow.

Latest-row, resume-key and commit-id tests run on a local folder and on ``s3://`` (moto's S3 server)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow.dataset as pads
import pytest

from tests._store_util import child_root, moto_s3_server, s3_uri

from ww_ray.store import commit_model, done_keys, new_run_id, open_dataset, open_pyarrow, read_table, write_regressions


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path: Path) -> str:
    """A dataset root: a local folder, or a fresh prefix on the moto S3 server."""
    return str(tmp_path) if request.param == "local" else s3_uri(request.getfixturevalue("s3_endpoint"))


def _row(run_id: str, model_id: str, status: str = "ok", version: str = "1.0", dataset: str = "CIFAR-10",
         alpha: float = 3.0, t: int = 0) -> dict:
    return {"source": "pytorchcv", "model_id": model_id, "revision": "r-" + model_id, "run_id": run_id,
            "status": status, "dataset": dataset, "architecture": "ResNet", "analyzer_version": version,
            "preset": "paper", "alpha": alpha, "error": "boom" if status == "failed" else None,
            "finished_at": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=t)}


def _layers(alphas: list[float]) -> list[dict]:
    return [{"layer_index": i, "layer_name": f"l{i}", "alpha": a, "status": "ok"} for i, a in enumerate(alphas)]


def _two_runs(root: str | Path) -> tuple[str, str]:
    run1 = "20240101T000000.000000Z-aaaaaaaa"
    run2 = "20240102T000000.000000Z-bbbbbbbb"
    commit_model(root, _layers([2.0, 3.0]), _row(run1, "a", alpha=2.5, t=0))
    commit_model(root, _layers([4.0]), _row(run1, "b", alpha=4.0, t=1))
    commit_model(root, [], _row(run1, "c", status="failed", t=2))
    commit_model(root, [], _row(run1, "d", status="skipped", t=3))
    # run 2 redoes "a" (new numbers) and retries "c" successfully, on another dataset partition for "e"
    commit_model(root, _layers([5.0, 6.0, 7.0]), _row(run2, "a", alpha=6.0, t=10))
    commit_model(root, _layers([3.5]), _row(run2, "c", alpha=3.5, t=11))
    commit_model(root, _layers([2.2]), _row(run2, "e", dataset="CIFAR-100", alpha=2.2, t=12))
    return run1, run2


def test_latest_row_per_key(root: str) -> None:
    run1, run2 = _two_runs(root)
    models = read_table(root, "models").set_index("model_id")
    assert sorted(models.index) == ["a", "b", "c", "d", "e"]
    assert models.loc["a", "run_id"] == run2 and models.loc["a", "alpha"] == 6.0
    assert models.loc["c", "status"] == "ok" and models.loc["b", "run_id"] == run1
    assert len(read_table(root, "models", latest=False)) == 7
    layers = read_table(root, "layers")
    assert sorted(layers.loc[layers.model_id == "a", "alpha"]) == [5.0, 6.0, 7.0]  # only the latest run's
    assert len(layers) == 3 + 1 + 1 + 1
    assert len(read_table(root, "layers", latest=False)) == 2 + 1 + 3 + 1 + 1


def test_latest_uses_finished_at_then_run_id(root: str) -> None:
    late_run, early_run = "20240105T000000.000000Z-00000000", "20240101T000000.000000Z-00000000"
    commit_model(root, [], _row(late_run, "a", alpha=1.0, t=5))
    commit_model(root, [], _row(early_run, "a", alpha=2.0, t=9))  # finished later: wins
    assert read_table(root, "models").loc[0, "alpha"] == 2.0
    commit_model(root, [], _row(late_run, "a", alpha=3.0, t=9))  # same time: the greater run id wins
    assert read_table(root, "models").loc[0, "alpha"] == 3.0


def test_done_keys_resume_semantics(root: str) -> None:
    _two_runs(root)
    assert done_keys(root, "1.0") == {("pytorchcv", m, "r-" + m) for m in "abcde"}
    run3 = new_run_id()
    commit_model(root, [], _row(run3, "b", status="failed", t=20))  # latest row failed: retried
    assert ("pytorchcv", "b", "r-b") not in done_keys(root, "1.0")
    assert done_keys(root, "2.0") == set()  # a new analyzer version redoes everything
    assert done_keys(root, "1.0", preset="ww") == set()
    assert done_keys(child_root(root, "missing"), "1.0") == set()


def test_duckdb_views_with_hive_partitioning(tmp_path: Path) -> None:
    run1, run2 = _two_runs(tmp_path)
    write_regressions(tmp_path, [{"source": "pytorchcv", "dataset": "CIFAR-10", "architecture": "ResNet",
                                  "metric": "alpha", "target": "top1_error", "n": 4, "r2": 0.7}], run2)
    con = open_dataset(tmp_path)
    assert con.sql("SELECT count(*) FROM models").fetchall() == [(5,)]
    assert con.sql("SELECT count(*) FROM models_all").fetchall() == [(7,)]
    assert con.sql("SELECT count(*) FROM layers").fetchall() == [(6,)]
    per_dataset = con.sql("SELECT dataset, count(*) FROM layers GROUP BY 1 ORDER BY 1").fetchall()
    assert per_dataset == [("CIFAR-10", 5), ("CIFAR-100", 1)]
    assert con.sql("SELECT r2 FROM regressions").fetchall() == [(0.7,)]
    assert con.sql("SELECT count(*) FROM runs").fetchall() == [(0,)]
    # the layout is readable "as it is" by plain DuckDB with hive partitioning
    raw = duckdb.sql(f"SELECT source, dataset, count(*) FROM read_parquet('{tmp_path}/layers/**/*.parquet', "
                     "hive_partitioning=true) GROUP BY ALL ORDER BY 2").fetchall()
    assert raw == [("pytorchcv", "CIFAR-10", 7), ("pytorchcv", "CIFAR-100", 1)]
    plan = con.sql("EXPLAIN SELECT * FROM layers_all WHERE dataset = 'CIFAR-100'").fetchall()[0][1]
    assert "\"dataset\"='CIFAR-100'" in plan.replace(" ", "")  # the filter is pushed into the pyarrow scan
    import pyarrow.dataset as pads
    from ww_ray.store import open_pyarrow
    fragments = list(open_pyarrow(tmp_path, "layers").get_fragments(filter=pads.field("dataset") == "CIFAR-100"))
    assert len(fragments) == 1  # ... which prunes the partition's files


def test_pyarrow_dataset_and_empty_root(tmp_path: Path) -> None:
    _two_runs(tmp_path)
    dataset = open_pyarrow(tmp_path, "layers")
    assert isinstance(dataset, pads.Dataset)
    part = dataset.to_table(filter=pads.field("dataset") == "CIFAR-100")
    assert part.column("alpha").to_pylist() == [2.2]
    assert len(list(dataset.get_fragments(filter=pads.field("dataset") == "CIFAR-100"))) == 1
    empty = tmp_path / "empty"
    con = open_dataset(empty)
    for view in ("layers", "models", "regressions", "runs"):
        assert con.sql(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]
    assert "alpha" in con.sql("SELECT * FROM layers").columns
    assert read_table(empty, "models").empty


def test_a_model_committed_twice_in_one_run_shows_one_set_of_layers(root: str) -> None:
    run = "20240101T000000.000000Z-aaaaaaaa"
    commit_model(root, _layers([2.0, 3.0]), _row(run, "a", t=0))
    commit_model(root, _layers([4.0, 5.0, 6.0]), _row(run, "a", t=1))  # e.g. a retried commit
    assert sorted(read_table(root, "layers")["alpha"]) == [4.0, 5.0, 6.0]
    assert len(read_table(root, "layers", latest=False)) == 5
    con = open_dataset(root)
    assert sorted(a for (a,) in con.sql("SELECT alpha FROM layers").fetchall()) == [4.0, 5.0, 6.0]
    models = read_table(root, "models", latest=False)
    assert models["commit_id"].nunique() == 2 and models["commit_id"].str.fullmatch(r"[0-9a-f]{32}").all()
