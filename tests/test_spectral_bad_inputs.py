"""Bad input never raises out of `ww_ray.analyze`: it becomes rows with status failed/skipped and an error."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import ww_ray
from tests._zoos_util import CodeRunningPayload


def _by_name(frame):
    return {row.layer_name: row for row in frame.itertuples()}


def test_nan_inf_zero_and_degenerate_tensors_become_status_rows(tmp_path):
    rng = np.random.default_rng(0)
    good = torch.tensor(rng.normal(size=(120, 80)), dtype=torch.float32)
    nan = good.clone()
    nan[3, 4] = float("nan")
    inf = good.clone()
    inf[0, 0] = float("inf")
    tensors = {
        "good.weight": good,
        "nan.weight": nan,
        "inf.weight": inf,
        "zero.weight": torch.zeros(120, 80),
        "row.weight": torch.ones(1, 300),
        "empty.weight": torch.zeros(0, 64),
        "conv_nan.weight": torch.full((64, 64, 3, 3), float("nan")),
    }
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path))
    rows = _by_name(ww_ray.analyze(path))
    assert rows["good"].status == "ok" and rows["good"].alpha > 1
    assert rows["nan"].status == "failed" and "NaN or Inf" in rows["nan"].error
    assert rows["inf"].status == "failed" and "NaN or Inf" in rows["inf"].error
    assert rows["zero"].status == "failed" and "all-zero" in rows["zero"].error
    assert rows["row"].status == "skipped" and "M=1 < min_evals=50" in rows["row"].error
    assert rows["empty"].status == "skipped" and "empty weight tensor" in rows["empty"].error
    conv_rows = ww_ray.analyze(path).query("layer_name == 'conv_nan'")
    assert len(conv_rows) == 9 and set(conv_rows["status"]) == {"failed"}
    # With no size floor a 1×N matrix is analysed: one eigenvalue is too few for a power-law fit.
    lone = ww_ray.analyze(path, min_evals=0).query("layer_name == 'row'").iloc[0]
    assert lone.status == "ok" and lone.warning == "failed" and "at least 2 eigenvalues" in lone.error
    assert lone.lambda_max == pytest.approx(300.0)


def test_a_file_that_is_not_a_checkpoint_gives_one_failed_row(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("this is not a checkpoint")
    frame = ww_ray.analyze(path)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row.status == "failed" and row.error


def test_missing_file_and_unsupported_source_type_give_failed_rows(tmp_path):
    assert ww_ray.analyze(tmp_path / "nope.safetensors").iloc[0].status == "failed"
    row = ww_ray.analyze(12345).iloc[0]
    assert row.status == "failed" and "cannot analyse a int" in row.error


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # a hostile pickle picks its own protocol
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"fc.weight": CodeRunningPayload(marker)}}, f)
    frame = ww_ray.analyze(path)
    assert not marker.exists(), "unpickling ran code"
    assert frame.iloc[0].status == "failed" and "weights_only" in frame.iloc[0].error


def test_invalid_options_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown preset"):
        ww_ray.analyze({}, preset="nope")
    with pytest.raises(ValueError, match="unknown analysis option"):
        ww_ray.analyze({}, conv_metod="fft")
    with pytest.raises(ValueError, match="conv_method"):
        ww_ray.analyze({}, conv_method="svd")
