"""Store writes: layout, schema casting, atomicity (simulated crashes), no overwrite, validation."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ww_ray.store import (
    commit_model, new_run_id, open_dataset, read_manifests, read_table, resolve_root, write_manifest,
    write_regressions,
)
from ww_ray.store import paths as store_paths
from ww_ray.store.schema import LAYERS_SCHEMA, MODELS_SCHEMA, SCHEMA_VERSION

from tests._store_util import hooked_root


def _model(run_id: str, model_id: str = "resnet20_cifar10", **extra) -> dict:
    row = {"source": "pytorchcv", "model_id": model_id, "revision": "sha1-" + model_id, "run_id": run_id,
           "status": "ok", "dataset": "CIFAR-10", "architecture": "ResNet", "analyzer_version": "0.1.0",
           "preset": "paper", "alpha": 3.25, "top1_error": 8.27}
    row.update(extra)
    return row


def _layers(n: int, alpha0: float = 2.0) -> list[dict]:
    return [{"layer_index": i, "layer_name": f"conv{i}", "layer_type": "conv2d", "N": 64, "M": 16,
             "alpha": alpha0 + i, "status": "ok"} for i in range(n)]


def _visible_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_commit_layout_and_canonical_schema(tmp_path: Path) -> None:
    run_id = new_run_id()
    commit_model(tmp_path, _layers(3), _model(run_id))
    layer_files = list((tmp_path / "layers" / "source=pytorchcv" / "dataset=CIFAR-10").glob("*.parquet"))
    model_files = list((tmp_path / "models" / "source=pytorchcv" / "dataset=CIFAR-10").glob("*.parquet"))
    assert len(layer_files) == 1 and len(model_files) == 1
    assert layer_files[0].name.startswith(run_id + "-")
    assert pq.read_schema(layer_files[0]).remove_metadata().equals(LAYERS_SCHEMA.remove_metadata())
    assert pq.read_schema(model_files[0]).remove_metadata().equals(MODELS_SCHEMA.remove_metadata())
    layers = pq.read_table(layer_files[0]).to_pandas()
    # layer rows inherit the key, run id and model context from the model row
    assert set(layers["model_id"]) == {"resnet20_cifar10"} and set(layers["run_id"]) == {run_id}
    assert set(layers["architecture"]) == {"ResNet"} and set(layers["preset"]) == {"paper"}
    assert list(layers["alpha"]) == [2.0, 3.0, 4.0]
    model = pq.read_table(model_files[0]).to_pandas().iloc[0]
    assert model["finished_at"] is not None and model["top1_error"] == 8.27


def test_partition_values_are_sanitised_and_round_trip(tmp_path: Path) -> None:
    run_id = new_run_id()
    commit_model(tmp_path, _layers(1), _model(run_id, source="local", dataset="Visual Wake Words 96x96/v2"))
    commit_model(tmp_path, [], _model(run_id, model_id="m2", source="hf", dataset=None, status="failed", error="x"))
    dirs = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "models").glob("*/*"))
    assert dirs == ["models/source=hf/dataset=__HIVE_DEFAULT_PARTITION__",
                    "models/source=local/dataset=Visual%20Wake%20Words%2096x96%2Fv2"]
    assert store_paths.partition_value("..") == "%2E."
    models = read_table(tmp_path, "models").set_index("model_id")
    assert models.loc["resnet20_cifar10", "dataset"] == "Visual Wake Words 96x96/v2"
    assert models.loc["m2", "dataset"] is None or models["dataset"].isna()["m2"]
    con = open_dataset(tmp_path)
    got = con.sql("SELECT dataset FROM models_all WHERE source = 'local'").fetchall()
    assert got == [("Visual Wake Words 96x96/v2",)]


def _crash(exc: BaseException):
    def on_move(src: str, dest: str) -> None:
        raise exc
    return on_move


def test_crash_before_rename_leaves_nothing_visible(tmp_path: Path) -> None:
    # the process "dies" after writing the temp file, before the rename
    root, _ = hooked_root(tmp_path, on_move=_crash(KeyboardInterrupt("simulated crash")))
    with pytest.raises(KeyboardInterrupt):
        commit_model(root, _layers(2), _model(new_run_id()))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # temp file cleaned up
    assert read_table(tmp_path, "layers").empty and read_table(tmp_path, "models").empty


def test_crash_with_temp_file_left_behind_is_ignored(tmp_path: Path) -> None:
    """A hard kill can leave the temp file on disk: readers (pyarrow, DuckDB globs) never see it."""
    root, _ = hooked_root(tmp_path, on_move=_crash(SystemExit(9)), delete_enabled=False)
    with pytest.raises(SystemExit):
        commit_model(root, _layers(2), _model(new_run_id()))
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".") and leftovers[0].name.endswith(".tmp")
    assert _visible_files(tmp_path) == []
    assert read_table(tmp_path, "layers", latest=False).empty
    assert open_dataset(tmp_path).sql("SELECT count(*) FROM layers_all").fetchall() == [(0,)]
    raw = duckdb.sql(f"SELECT count(*) FROM glob('{tmp_path}/**/*.parquet')").fetchall()
    assert raw == [(0,)]


def test_crash_between_layers_and_models_hides_orphan_layers(tmp_path: Path) -> None:
    commit_model(tmp_path, _layers(2), _model(new_run_id(), model_id="a"))

    def die_before_models_row(src: str, dest: str) -> None:
        if "/models/" in dest:
            raise KeyboardInterrupt("killed before the models row")

    root, handler = hooked_root(tmp_path, on_move=die_before_models_row)
    with pytest.raises(KeyboardInterrupt):
        commit_model(root, _layers(5), _model(new_run_id(), model_id="b"))
    assert len(handler.moves) == 1 and "/layers/" in handler.moves[0]  # the orphan layers file of "b" ...
    assert sorted(read_table(tmp_path, "layers", latest=False)["model_id"]) == ["a", "a"]  # ... is invisible
    con = open_dataset(tmp_path)
    assert con.sql("SELECT count(*) FROM layers_all").fetchall() == [(7,)]
    assert con.sql("SELECT model_id, count(*) FROM layers GROUP BY 1").fetchall() == [("a", 2)]


def test_nothing_is_overwritten(tmp_path: Path) -> None:
    run_id = new_run_id()
    for _ in range(3):  # the same model committed three times in one run: three files, all kept
        commit_model(tmp_path, _layers(1), _model(run_id))
    assert len(list((tmp_path / "models").rglob("*.parquet"))) == 3
    write_manifest(tmp_path, run_id, {"counts": {"ok": 1}})
    before = (tmp_path / "runs" / f"{run_id}.json").read_text()
    with pytest.raises(FileExistsError):
        write_manifest(tmp_path, run_id, {"counts": {"ok": 2}})
    assert (tmp_path / "runs" / f"{run_id}.json").read_text() == before
    root = resolve_root(tmp_path)
    path = root.join("runs", f"{run_id}.json")
    with pytest.raises(FileExistsError):
        store_paths.atomic_write(root.filesystem, path, lambda s: s.write(b"{}"))


def test_bad_rows_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    run_id = new_run_id()
    with pytest.raises(ValueError, match="not in the canonical layers schema"):
        commit_model(tmp_path, [{"layer_index": 0, "bogus": 1}], _model(run_id))
    with pytest.raises(ValueError, match="column 'N' cannot be cast"):
        commit_model(tmp_path, [{"layer_index": 0, "N": 1.5}], _model(run_id))
    with pytest.raises(ValueError, match="status must be one of"):
        commit_model(tmp_path, [], _model(run_id, status="done"))
    with pytest.raises(ValueError, match="non-empty string 'model_id'"):
        commit_model(tmp_path, [], _model(run_id, model_id=""))
    with pytest.raises(ValueError, match="run_id must be"):
        commit_model(tmp_path, [], _model("../escape"))
    with pytest.raises(ValueError, match="layer rows carry model_id"):
        commit_model(tmp_path, [{"model_id": "other", "layer_index": 0}], _model(run_id))
    assert _visible_files(tmp_path) == []


def test_manifest_and_regressions(tmp_path: Path) -> None:
    run_id = new_run_id()
    path = write_manifest(tmp_path, run_id, {"config": {"preset": "paper", "zoos": [1, 2]},
                                             "counts": {"ok": 3, "failed": 1}, "nan": float("nan")})
    body = json.loads(Path(path).read_text())
    assert body["run_id"] == run_id and body["nan"] is None and body["schema_version"] == SCHEMA_VERSION
    assert [m["run_id"] for m in read_manifests(tmp_path)] == [run_id]
    runs = read_table(tmp_path, "runs")
    assert list(runs["run_id"]) == [run_id] and json.loads(runs.loc[0, "counts"]) == {"ok": 3, "failed": 1}
    rows = [{"source": "pytorchcv", "dataset": "CIFAR-10", "architecture": "ResNet", "metric": m,
             "target": "top1_error", "n": 4, "r2": r2, "model_ids": ["a", "b", "c", "d"]}
            for m, r2 in (("alpha", 0.5), ("log_norm", 0.9))]
    assert write_regressions(tmp_path, rows, run_id).endswith(".parquet")
    assert write_regressions(tmp_path, [], run_id) is None
    got = read_table(tmp_path, "regressions").set_index("metric")
    assert got.loc["log_norm", "r2"] == 0.9 and list(got.loc["alpha", "model_ids"]) == ["a", "b", "c", "d"]
    assert set(got["run_id"]) == {run_id}


def test_uri_roots_resolve_through_pyarrow(tmp_path: Path) -> None:
    root = resolve_root(f"file://{tmp_path.as_posix()}")
    assert root.path == tmp_path.as_posix()
    commit_model(root, _layers(1), _model(new_run_id()))
    assert len(read_table(f"file://{tmp_path.as_posix()}", "layers")) == 1
    with pytest.raises(ValueError, match="cannot open dataset root"):
        resolve_root("nosuchscheme://bucket/x")


def test_non_local_filesystems_are_read_through_pyarrow(tmp_path: Path) -> None:
    """Roots on other filesystems (s3://, gs://, ...) go through pyarrow datasets registered in DuckDB;
    a PyFileSystem over local disk stands in for a remote store here."""
    run_id = new_run_id()
    root, handler = hooked_root(tmp_path)
    assert not root.is_local
    commit_model(root, _layers(3), _model(run_id))
    commit_model(root, [], _model(run_id, model_id="m2", status="failed", error="unreachable"))
    write_manifest(root, run_id, {"counts": {"ok": 1, "failed": 1}})
    assert len(handler.moves) == 4  # every file went through temp + rename on that filesystem
    con = open_dataset(root)
    assert con.sql("SELECT count(*) FROM layers").fetchall() == [(3,)]
    assert con.sql("SELECT model_id, status FROM models ORDER BY 1").fetchall() == [("m2", "failed"), ("resnet20_cifar10", "ok")]
    assert con.sql("SELECT run_id FROM runs").fetchall() == [(run_id,)]
    assert len(read_table(root, "layers")) == 3
