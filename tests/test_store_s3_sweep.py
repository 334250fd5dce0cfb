"""A sweep into ``s3://`` on a real S3-protocol server (moto's server mode on 127.0.0.1): the driver is
killed in the middle of a commit, the rerun resumes, the end-of-sweep compaction and ``ww-ray query``
work on the bucket, and every model ends with exactly one ``models`` row."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._engine_util import local_ray_cluster, write_dense_zoo
from tests._store_util import moto_s3_server, s3_uri
from ww_ray.config import load_config
from ww_ray.engine import run_config
from ww_ray.store import read_manifests, read_table, visible_files
from ww_ray.store.paths import KILL_BEFORE_RENAME_ENV
from ww_ray.store.snapshot import COMPACTED_SUFFIX

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def local_ray():
    with local_ray_cluster(loads=2) as ray:
        yield ray


def test_sweep_into_s3_killed_mid_commit_then_resumed(local_ray, s3_endpoint, tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    write_dense_zoo(zoo, count=5, shapes=[(300, 200)] * 3, seed=30)
    out = s3_uri(s3_endpoint)
    config_path = tmp_path / "sweep.yaml"
    config_path.write_text(f"zoos:\n  - kind: local\n    path: {zoo}\nout: '{out}'\n"
                           "ray: {workers: 1, max_models_in_flight: 1}\n")
    # The driver dies (os._exit(137), like SIGKILL) before the rename — on S3 the server-side copy —
    # of its 3rd file: model 1's layers and models files are committed, model 2's layers are not.
    env = {**os.environ, "PYTHONPATH": str(REPO), "WW_RAY_COMMIT_BATCH": "1", KILL_BEFORE_RENAME_ENV: "3"}
    killed = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "sweep.py"), "--config", str(config_path),
         "--address", local_ray.get_runtime_context().gcs_address, "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert killed.returncode == 137, killed.stdout[-3000:] + killed.stderr[-3000:]
    before = read_table(out, "models", latest=False)
    assert len(before) == 1 and read_manifests(out) == []  # one model committed, no manifest
    assert len(read_table(out, "layers")) == 3

    result = run_config(load_config(config_path), progress=False)
    assert result.status == "completed" and result.already_done == 1 and result.planned == 4
    raw = read_table(out, "models", latest=False)
    assert sorted(raw.model_id) == [f"model-{i:02d}" for i in range(5)]  # one row each: nothing twice, none lost
    assert (raw.status == "ok").all()
    assert raw.set_index("model_id").loc[before.model_id[0], "run_id"] == before.run_id[0]  # not redone
    assert read_table(out, "layers").groupby("model_id").size().tolist() == [3] * 5
    # the end-of-sweep compaction ran on the bucket: one visible file per table and partition
    for table in ("layers", "models"):
        files = visible_files(out, table)
        assert len(files) == 1 and files[0].endswith(COMPACTED_SUFFIX), files
    query = subprocess.run([sys.executable, "-m", "ww_ray.cli", "query", out,
                            "SELECT count(*) AS n, count(DISTINCT model_id) AS m FROM models", "--format", "csv"],
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert query.returncode == 0, query.stderr
    assert query.stdout.strip().splitlines()[-1] == "5,5"
