"""``vacuum``: what killed writers left (temp files, orphan layers files) goes; nothing a reader sees changes."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from ww_ray.cli import main
from ww_ray.store import commit_model, new_run_id, read_table, resolve_root
from ww_ray.store.vacuum import vacuum

from tests._store_util import hooked_root

HOUR = 3600.0


def _model(run_id: str, model_id: str) -> dict:
    return {"source": "local", "model_id": model_id, "revision": "sha-" + model_id, "run_id": run_id,
            "status": "ok", "dataset": "cifar10", "architecture": "ResNet", "analyzer_version": "v1",
            "preset": "paper", "alpha": 3.0}


def _layers(n: int) -> list[dict]:
    return [{"layer_index": i, "layer_name": f"conv{i}", "layer_type": "conv2d", "N": 64, "M": 16,
             "alpha": 2.0 + i, "status": "ok"} for i in range(n)]


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def _crashed_store(folder: Path) -> tuple[Path, Path]:
    """A root with committed models, one temp file (killed before a rename) and one orphan layers file."""
    run_id = new_run_id()
    commit_model(folder, _layers(2), _model(run_id, "a"))
    commit_model(folder, _layers(2), _model(run_id, "a"))  # committed twice: both layers files are linked
    commit_model(folder, _layers(3), _model(run_id, "b"))
    before = _files(folder)

    def killed(src: str, dest: str) -> None:
        raise SystemExit(9)

    root, _ = hooked_root(folder, on_move=killed, delete_enabled=False)
    with pytest.raises(SystemExit):
        commit_model(root, _layers(4), _model(run_id, "c"))
    (temp,) = _files(folder) - before

    def killed_before_models_row(src: str, dest: str) -> None:
        if "/models/" in dest:
            raise SystemExit(9)

    root, _ = hooked_root(folder, on_move=killed_before_models_row, delete_enabled=False)
    with pytest.raises(SystemExit):
        commit_model(root, _layers(5), _model(run_id, "d"))
    new = _files(folder) - before - {temp}
    orphan = next(p for p in new if "/layers/" in p.as_posix() and not p.name.startswith("."))
    for leftover in new - {orphan}:  # the models temp file of "d" is a second temp leftover
        assert leftover.name.startswith(".") and leftover.name.endswith(".tmp")
    return temp, orphan


def test_vacuum_removes_crash_leftovers_and_keeps_every_visible_row(tmp_path: Path) -> None:
    temp, orphan = _crashed_store(tmp_path)
    temps = {p for p in _files(tmp_path) if p.name.startswith(".")}
    assert temp in temps and len(temps) == 2
    layers, models = read_table(tmp_path, "layers", latest=False), read_table(tmp_path, "models", latest=False)
    assert sorted(layers.model_id) == ["a"] * 4 + ["b"] * 3  # "c" and "d" are invisible already
    files = _files(tmp_path)

    young = vacuum(tmp_path)  # everything was written just now: nothing is old enough
    assert young.removed == [] and young.kept_too_young == 3 and _files(tmp_path) == files

    later = time.time() + 2 * HOUR
    planned = vacuum(tmp_path, dry_run=True, now=later)
    assert planned.removed == [] and _files(tmp_path) == files
    assert {Path(p) for p in planned.temp_files} == temps
    assert [Path(p) for p in planned.orphan_layers_files] == [orphan]
    assert planned.bytes == sum(p.stat().st_size for p in temps | {orphan})

    done = vacuum(tmp_path, now=later)
    assert sorted(done.removed) == sorted(planned.temp_files + planned.orphan_layers_files)
    assert _files(tmp_path) == files - temps - {orphan}
    pd.testing.assert_frame_equal(read_table(tmp_path, "layers", latest=False), layers)
    pd.testing.assert_frame_equal(read_table(tmp_path, "models", latest=False), models)
    again = vacuum(tmp_path, now=later + HOUR)
    assert again.removed == [] and again.kept_too_young == 0


def test_vacuum_on_a_non_local_filesystem() -> None:
    root = resolve_root("mock:///ww-vacuum")
    assert not root.is_local
    run_id = new_run_id()
    commit_model(root, _layers(2), _model(run_id, "kept"))
    commit_model(root, _layers(3), _model(run_id, "lost"))
    selector = pafs.FileSelector(root.join("models"), recursive=True)
    infos = [i for i in root.filesystem.get_file_info(selector) if i.type == pafs.FileType.File]
    lost_row = next(i.path for i in infos if _model_id_of(root, i.path) == "lost")
    root.filesystem.delete_file(lost_row)  # as if the writer died before the models row of "lost"
    stray = root.join("layers", ".x.parquet.0badc0de.tmp")
    with root.filesystem.open_output_stream(stray) as stream:
        stream.write(b"half a parquet file")
    report = vacuum(root, now=time.time() + 365 * 24 * HOUR)
    assert report.temp_files == [stray] and len(report.orphan_layers_files) == 1
    assert read_table(root, "layers").model_id.tolist() == ["kept", "kept"]
    remaining = [i for i in root.filesystem.get_file_info(pafs.FileSelector(root.join("layers"), recursive=True))
                 if i.type == pafs.FileType.File]
    assert len(remaining) == 1


def _model_id_of(root, path: str) -> str:
    import pyarrow.parquet as pq

    with root.filesystem.open_input_file(path) as handle:
        return pq.read_table(handle, columns=["model_id"]).column(0)[0].as_py()


def test_store_vacuum_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    temp, orphan = _crashed_store(tmp_path)
    two_hours_ago = time.time() - 2 * HOUR
    for path in (temp, orphan):
        os.utime(path, (two_hours_ago, two_hours_ago))
    assert main(["store", "vacuum", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete temp file {temp.as_posix()}" in out and f"orphan layers file {orphan.as_posix()}" in out
    assert "would delete 2 file(s)" in out and "1 younger than 3600s kept" in out and temp.exists()
    assert main(["store", "vacuum", str(tmp_path)]) == 0
    assert "deleted 2 file(s)" in capsys.readouterr().out and not temp.exists() and not orphan.exists()
    assert main(["store", "vacuum", str(tmp_path), "--older-than", "soon"]) == 2
    captured = capsys.readouterr()
    assert "ww-ray store vacuum: --older-than must be a duration" in captured.err and captured.out == ""
    assert main(["store", "vacuum", str(tmp_path / "absent")]) == 2
    assert "no dataset root at" in capsys.readouterr().err
