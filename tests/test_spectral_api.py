"""The public API and `ww-ray analyze`: sources, presets, options, summaries."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import ww_ray
from ww_ray.cli import main as cli_main
from ww_ray.spectral.presets import PRESETS, resolve_options
from ww_ray.store.schema import LAYERS_SCHEMA


@pytest.fixture(scope="module")
def resnet20(akamaster_dir):
    return akamaster_dir / "resnet20-12fca82f.th"


def test_rows_carry_the_layers_schema_columns_and_keys(resnet20):
    frame = ww_ray.analyze(resnet20)
    assert list(frame.columns) == LAYERS_SCHEMA.names
    assert frame["revision"].str.startswith("12fca82f").all()  # sha256 of the file
    assert (frame["preset"] == "paper").all()
    # paper preset: 3×3 slices, M < 50 skipped: only the 64-channel stage survives (19 convs, 1 linear)
    ok = frame[frame["status"] == "ok"]
    assert set(ok["M"]) == {64} and set(ok["conv_method"]) == {"slices"}
    assert len(ok) == 5 * 9  # layer3.0.conv2 .. layer3.2.conv2 (64×64) × 9 slices; layer3.0.conv1 is 64×32
    assert (ok["slice_id"].between(0, 8)).all()
    assert frame["layer_index"].is_monotonic_increasing
    assert set(frame.loc[frame["status"] == "skipped", "error"].str.extract(r"(min_evals=\d+)")[0]) == {"min_evals=50"}


def test_module_state_dict_and_file_sources_agree(resnet20):
    state = torch.load(resnet20, map_location="cpu", weights_only=True)["state_dict"]
    from_file = ww_ray.analyze(resnet20, preset="ww")
    from_state = ww_ray.analyze({k.removeprefix("module."): v for k, v in state.items()}, preset="ww")
    assert list(from_file["layer_name"]) == list(from_state["layer_name"])
    np.testing.assert_allclose(from_file["alpha"], from_state["alpha"], rtol=1e-12)

    model = torch.nn.Sequential(torch.nn.Conv2d(16, 64, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(64, 10))
    rows = ww_ray.analyze(model, preset="ww")
    assert list(rows["layer_name"]) == ["0", "3"] and list(rows["layer_type"]) == ["conv2d", "linear"]


def test_presets_and_overrides():
    assert PRESETS["paper"].conv_method == "slices" and PRESETS["paper"].min_evals == 50
    ww = resolve_options("ww")
    assert (ww.conv_method, ww.min_evals, ww.max_evals, ww.max_n, ww.small_n_fit) == ("pooled", 8, 15000, 50000, True)
    assert resolve_options("paper", conv_method="fft", fft_size=8).fft_size == 8
    with pytest.raises(ValueError, match="xmax"):
        resolve_options("paper", xmax="max")


def test_tpl_and_forced_xmax_go_through_the_powerlaw_package():
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.standard_t(df=3, size=(400, 200)), dtype=torch.float32)
    model = torch.nn.Linear(200, 400)
    with torch.no_grad():
        model.weight.copy_(w)
    plain = ww_ray.analyze(model).iloc[0]
    tpl = ww_ray.analyze(model, fit="TPL").iloc[0]
    forced = ww_ray.analyze(model, xmax="force").iloc[0]
    for row in (plain, forced):
        assert row.status == "ok" and 1 < row.alpha < 10
    # a truncated power law may put the exponent anywhere (here the exponential cut-off does the work)
    assert tpl.status == "ok" and np.isfinite(tpl.alpha) and tpl.alpha != plain.alpha
    import powerlaw

    evals = np.sort(np.linalg.svd(w.double().numpy(), compute_uv=False) ** 2)
    reference = powerlaw.Fit(evals[evals > 1e-5], xmax=evals.max(), verbose=False)
    assert forced.alpha == pytest.approx(reference.alpha, rel=1e-6)


def test_summary_leaves_out_embeddings_and_failures():
    frame = pd.DataFrame({
        "layer_index": [0, 1, 1, 2, 3],
        "layer_type": ["embedding", "conv2d", "conv2d", "linear", "linear"],
        "status": ["ok", "ok", "ok", "ok", "failed"],
        "alpha": [100.0, 2.0, 4.0, 6.0, math.nan],
        "log_norm": [9.0, 1.0, 1.0, 4.0, math.nan],
    })
    summary = ww_ray.summarize(frame)
    assert summary["alpha"] == pytest.approx(4.0) and summary["alpha_compound"] == pytest.approx(4.5)
    assert summary["log_norm"] == pytest.approx(2.0) and summary["log_norm_compound"] == pytest.approx(2.5)
    assert summary["num_layers"] == 2 and summary["num_failed_layers"] == 1
    assert math.isnan(summary["rand_distance"])


def test_paper_preset_series_summaries_on_akamaster(akamaster_dir):
    from conftest import AKAMASTER_FILES

    summaries = [ww_ray.summarize(ww_ray.analyze(akamaster_dir / name)) for name in AKAMASTER_FILES]
    # deeper nets have more analysed 64-channel layers: 5, 9, 13, 17 conv layers of 64×64
    assert [s["num_layers"] for s in summaries] == [5, 9, 13, 17]
    for s in summaries:
        assert 1.5 < s["alpha"] < 8 and np.isfinite(s["log_alpha_norm"])


def test_cli_analyze_prints_table_and_summary_and_writes_rows(resnet20, tmp_path, capsys):
    out = tmp_path / "rows.parquet"
    assert cli_main(["analyze", str(resnet20), "--preset", "ww", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "layer3.2.conv2" in printed and "alpha_weighted" in printed and "20 rows: 20 ok" in printed
    rows = pd.read_parquet(out)
    assert len(rows) == 20 and rows["alpha"].notna().all()
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"\x00" * 64)
    assert cli_main(["analyze", str(bad)]) == 2          # unreadable source: one error line on stderr (issue 14)
    captured = capsys.readouterr()
    assert captured.out == "" and "is not a PyTorch checkpoint" in captured.err


def test_option_labels_name_every_change_and_round_trip():
    from ww_ray.spectral.presets import options_from_label

    assert resolve_options("paper").label == "paper"
    assert resolve_options("paper", device="cpu").label == "paper"  # the device does not change numbers
    tuned = resolve_options("ww", conv_method="fft", fft_size=8, xmax="force")
    assert tuned.label == "ww+conv_method=fft,fft_size=8,xmax=force"
    assert options_from_label(tuned.label) == tuned
    rows = ww_ray.analyze(torch.nn.Linear(100, 200), conv_method="stacked", min_evals=0)
    assert set(rows["preset"]) == {"paper+conv_method=stacked,min_evals=0"}


def test_batches_stay_within_the_flush_bound_and_rows_do_not_depend_on_it(monkeypatch):
    """``api._batches`` cuts a batch before the layer that would take it past ``_FLUSH_BYTES``: no
    batch is larger unless one layer alone is; the rows are the same as with one batch for all."""
    from ww_ray import api
    from ww_ray.weights import LayerWeight

    rng = np.random.default_rng(3)
    shapes = [(60, 40), (80, 40), (300, 200), (50, 30), (70, 20), (90, 45)]
    weights = [LayerWeight(f"fc{i}", i, "linear", torch.from_numpy(rng.normal(size=s).astype(np.float32)).to(torch.bfloat16))
               for i, s in enumerate(shapes)]
    options = resolve_options("paper")
    bound = 80 * 40 * 4 + 60 * 40 * 4 + 1000  # the first two layers fit, the 300×200 one is over the bound alone
    monkeypatch.setattr(api, "_FLUSH_BYTES", bound)
    batches = list(api._batches(iter(weights), options))
    sizes = [sum(item.nbytes for item in batch) for batch in batches]
    assert [[item.layer_name for item in batch] for batch in batches] == [
        ["fc0", "fc1"], ["fc2"], ["fc3", "fc4", "fc5"]]
    assert all(size <= bound for size, batch in zip(sizes, batches) if len(batch) > 1)
    bounded = api.analyze_weights(iter(weights), options, threads=2)
    monkeypatch.setattr(api, "_FLUSH_BYTES", 1 << 40)
    whole = api.analyze_weights(iter(weights), options, threads=2)
    for a, b in zip(bounded, whole):
        for metric in ("lambda_max", "alpha", "log_norm", "alpha_weighted"):
            assert a[metric] == pytest.approx(b[metric], rel=1e-12, nan_ok=True)
    assert math.isfinite(bounded[2]["alpha"]) and bounded[2]["lambda_max"] > 0
    assert [r["layer_name"] for r in bounded] == [f"fc{i}" for i in range(6)]
