"""A LoRA adapter through a real local sweep (real Ray, 2 CPUs): its rows land in the layers table with
``weight_role``, equal to the in-process analysis, alone and with its base (zoo option ``base_model``)."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

import ww_ray
from tests.test_adapters import make_adapter
from tests._engine_util import local_ray_cluster, write_dense_model
from ww_ray.config import parse_config
from ww_ray.engine import run_config
from ww_ray.store import read_table

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_ray():
    with local_ray_cluster(loads=2) as ray:
        yield ray


def test_adapter_sweep_writes_delta_rows_with_weight_role(local_ray, tmp_path):
    zoo = tmp_path / "zoo"
    base, _, folder = make_adapter(zoo, rank_pattern={"value": 4})
    write_dense_model(zoo / "plain.safetensors", [(300, 200)], seed=3)
    base_dir = tmp_path / "base"
    base.save_pretrained(str(base_dir))
    config = parse_config({"zoos": [{"kind": "local", "path": str(zoo)},
                                    {"kind": "local", "name": "withbase", "path": str(zoo / "adapter"),
                                     "base_model": str(base_dir)}],
                           "out": str(tmp_path / "out"), "ray": {"max_models_in_flight": 2}}, base_dir=tmp_path)
    result = run_config(config, progress=False)
    assert result.status == "completed" and result.planned == 3
    models = read_table(str(tmp_path / "out"), "models").set_index(["source", "model_id"])
    assert (models.status == "ok").all(), models[["status", "error"]]
    layers = read_table(str(tmp_path / "out"), "layers")
    assert "weight_role" in layers.columns

    alone = layers[(layers.source == "zoo") & (layers.model_id == "adapter")].sort_values("layer_name")
    plain = layers[layers.model_id == "plain"]
    assert set(alone.weight_role) == {"adapter_delta"} and set(plain.weight_role) == {"weight"}
    expected = ww_ray.analyze(folder).sort_values("layer_name")
    assert list(alone.layer_name) == list(expected.layer_name)
    for metric in ("lambda_max", "norm", "alpha", "num_evals", "entropy"):
        np.testing.assert_allclose(alone[metric].astype(float), expected[metric].astype(float), rtol=1e-12,
                                   err_msg=metric)

    paired = layers[layers.source == "withbase"]
    assert set(paired.weight_role) == {"base", "adapter_delta", "merged"}
    assert set(paired.base_model) == {"base"}
    in_process = ww_ray.analyze(folder, base_model=base_dir)
    key = ["weight_role", "layer_name"]
    got, want = paired.sort_values(key).reset_index(drop=True), in_process.sort_values(key).reset_index(drop=True)
    pd.testing.assert_series_equal(got.layer_name, want.layer_name)
    np.testing.assert_allclose(got.alpha.astype(float), want.alpha.astype(float), rtol=1e-12)
    # the models row summarises the merged model, not the base nor the deltas
    merged = ww_ray.summarize(in_process)
    assert models.loc[("withbase", "adapter"), "alpha"] == pytest.approx(merged["alpha"], rel=1e-12)
