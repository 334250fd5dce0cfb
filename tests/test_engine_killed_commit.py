"""A sweep whose driver dies between a commit's temp file and its rename (issue 12, item 8).

The ``ww-ray sweep`` CLI runs as its own process with ``WW_RAY_TEST_KILL_BEFORE_RENAME`` set, so
it dies (``os._exit(137)``, like a SIGKILL) at a chosen atomic write of the store. The dataset
root must read exactly as before the killed run (nothing half-written is visible), and a rerun of
the same command must finish every model: one terminal ``models`` row per planned model over all
runs, every good model ``ok``, no duplicate layer rows.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests._engine_util import assert_one_terminal_row_each, write_dense_model
from ww_ray.store import read_table
from ww_ray.store.paths import KILL_BEFORE_RENAME_ENV

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SHAPES = [(120, 80), (90, 60)]


def _sweep(config: Path, kill_at: int | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", KILL_BEFORE_RENAME_ENV)}
    env["PYTHONPATH"] = str(REPO)
    if kill_at is not None:
        env[KILL_BEFORE_RENAME_ENV] = str(kill_at)
    child = subprocess.Popen([sys.executable, "-m", "ww_ray.cli", "sweep", str(config), "--no-progress"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        out, err = child.communicate(timeout=300)
    finally:
        try:  # whatever the dead driver left behind in its session (local Ray processes)
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def _visible(root: Path) -> tuple[list, list]:
    models = read_table(str(root), "models", latest=False)
    layers = read_table(str(root), "layers")
    return (sorted(map(tuple, models[["model_id", "run_id", "status"]].values.tolist())),
            sorted(map(tuple, layers[["model_id", "run_id", "layer_index", "alpha"]].values.tolist())))


def test_a_sweep_killed_before_a_rename_reads_the_same_and_a_rerun_finishes(tmp_path: Path) -> None:
    zoo, root = tmp_path / "zoo", tmp_path / "root"
    write_dense_model(zoo / "m0.safetensors", SHAPES, seed=0)
    config = tmp_path / "sweep.yaml"
    config.write_text(f"name: killed\nzoos:\n  - kind: local\n    path: {zoo}\npreset: ww\nout: {root}\n"
                      "ray:\n  workers: 1\n")
    first = _sweep(config, kill_at=None)
    assert first.returncode == 0, first.stderr[-3000:]
    before = _visible(root)
    assert [m[0] for m in before[0]] == ["m0"] and before[1]

    for i in (1, 2, 3):
        write_dense_model(zoo / f"m{i}.safetensors", SHAPES, seed=i)
    killed = _sweep(config, kill_at=1)        # the first atomic write of the second run dies before its rename
    assert killed.returncode == 137, killed.stderr[-3000:]
    assert list(root.rglob(".*.tmp")), "the temp file the writer was about to rename is left behind"
    assert _visible(root) == before           # nothing of the killed run is visible

    rerun = _sweep(config, kill_at=None)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    source = read_table(str(root), "models").source.iloc[0]
    raw = assert_one_terminal_row_each(root, {(source, f"m{i}") for i in range(4)})
    assert sorted(raw.model_id) == ["m0", "m1", "m2", "m3"] and (raw.status == "ok").all()
    layers = read_table(str(root), "layers")
    assert not layers.duplicated(["model_id", "layer_index"]).any()
    assert layers.groupby("model_id").size().to_dict() == {f"m{i}": len(SHAPES) for i in range(4)}
