"""LoRA adapters and fine-tunes against their base, with real peft adapters on small seeded transformers.

* adapter rows (``adapter_delta``) equal the eigenvalues of the explicit ΔW that peft itself builds
  (``get_delta_weight``), to 1e-9, with rank_pattern / alpha_pattern and rsLoRA scales;
* merged rows equal analysing peft's ``merge_and_unload()`` model; base rows equal the base alone;
* a fine-tune against its base: ``delta_vs_base`` rows equal analysing W − W_base explicitly;
* unsupported adapters (DoRA, conv LoRA, an untrained B = 0) end in clear errors or failed rows.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import ww_ray
from ww_ray.spectral.lowrank import LowRankFactors, lowrank_eigenvalues
from ww_ray.spectral.metrics import esd_metrics
from ww_ray.spectral.presets import resolve_options
from ww_ray.store.schema import LAYER_METRIC_FIELDS
from ww_ray.zoos.adapters import adapter_weights, read_adapter_config
from ww_ray.zoos.checkpoint import CheckpointError

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

NUMERIC = [f.name for f in LAYER_METRIC_FIELDS if f.name not in ("warning",)]
# Metrics a rank-r row has (no Marchenko–Pastur bulk, no randomized control).
LOWRANK_METRICS = ["lambda_max", "log_spectral_norm", "norm", "log_norm", "alpha", "alpha_weighted",
                   "log_alpha_norm", "stable_rank", "entropy", "xmin", "xmax", "D", "sigma"]


def tiny_bert(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=200, hidden_size=96, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=128, max_position_embeddings=64)
    return transformers.BertModel(config).eval()


def make_adapter(tmp: Path, seed: int = 1, **lora) -> tuple[torch.nn.Module, object, Path]:
    """(a deep copy of the base, the peft model, the saved adapter folder)."""
    base = tiny_bert()
    base_copy = copy.deepcopy(base)
    torch.manual_seed(seed)
    settings = dict(r=8, lora_alpha=16, target_modules=["query", "value", "dense", "word_embeddings"],
                    init_lora_weights=False)
    settings.update(lora)
    model = peft.get_peft_model(base, peft.LoraConfig(**settings))
    folder = tmp / "adapter"
    model.save_pretrained(str(folder))
    return base_copy, model, folder


def peft_deltas(model) -> dict[str, tuple[np.ndarray, float]]:
    """module path -> (peft's own ΔW as float64, its scaling) for every LoRA module of a peft model."""
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and getattr(module, "scaling", None):
            delta = module.get_delta_weight("default").detach().double().numpy()
            out[name[len("base_model.model."):]] = (delta, float(module.scaling["default"]))
    return out


@pytest.fixture()
def adapter(tmp_path):
    return make_adapter(tmp_path, rank_pattern={"value": 4}, alpha_pattern={"layer.1.attention.self.query": 3})


def test_adapter_rows_equal_the_explicit_delta_eigenvalues(adapter):
    _, model, folder = adapter
    deltas = peft_deltas(model)
    rows = ww_ray.analyze(folder)
    assert set(rows.weight_role) == {"adapter_delta"}
    assert set(rows.layer_name) == set(deltas)            # the base module paths
    weights = {w.name: w for w in adapter_weights(folder)}
    options = resolve_options("paper", mp_fit=False)
    for row in rows.itertuples():
        delta, peft_scale = deltas[row.layer_name]
        factors = weights[row.layer_name].tensor
        assert factors.scale == pytest.approx(peft_scale, rel=1e-15)
        r = factors.rank
        assert row.num_evals == r and row.status == "ok" and (row.N, row.M) == (max(delta.shape), min(delta.shape))
        # the explicit ΔW in float64 from the stored factors is peft's ΔW (which peft forms in float32)
        dense = factors.dense()
        dense = dense.T if dense.shape != delta.shape else dense
        np.testing.assert_allclose(dense, delta, rtol=0, atol=1e-6 * np.abs(delta).max())
        delta = dense
        explicit = np.sort(np.linalg.svd(delta, compute_uv=False) ** 2)
        top = explicit[-r:]
        np.testing.assert_allclose(lowrank_eigenvalues(factors), top, rtol=0, atol=1e-9 * top.max())
        # every row metric is that of the explicit ΔW's non-zero spectrum
        expected = esd_metrics(top, row.N, row.M, options)
        for metric in LOWRANK_METRICS:
            assert getattr(row, metric) == pytest.approx(expected[metric], rel=1e-9, abs=1e-12), (row.layer_name, metric)
        assert row.matrix_rank == r and math.isnan(row.mp_softrank)
        assert row.lambda_max == pytest.approx(explicit.max(), rel=1e-9)
        assert row.norm == pytest.approx(np.sum(delta ** 2), rel=1e-9)   # ‖ΔW‖_F², zeros included
    # rank_pattern and alpha_pattern were applied as peft applies them
    by_name = rows.set_index("layer_name")
    assert by_name.loc["encoder.layer.0.attention.self.value", "num_evals"] == 4
    assert weights["encoder.layer.1.attention.self.query"].tensor.scale == pytest.approx(3 / 8)


def test_rslora_scale_is_alpha_over_sqrt_r(tmp_path):
    _, model, folder = make_adapter(tmp_path, r=16, lora_alpha=8, use_rslora=True, target_modules=["query"])
    config = read_adapter_config(folder)
    assert config.use_rslora and config.scale_of("encoder.layer.0.attention.self.query") == pytest.approx(2.0)
    deltas = peft_deltas(model)
    rows = ww_ray.analyze(folder, min_evals=0)
    weights = {w.name: w for w in adapter_weights(folder)}
    assert len(rows) == 2 and (rows.num_evals == 16).all()
    for row in rows.itertuples():
        delta, scale = deltas[row.layer_name]
        assert scale == pytest.approx(8 / 4) and weights[row.layer_name].tensor.scale == pytest.approx(scale)
        # against peft's float32 ΔW to float32 precision, against the float64 explicit ΔW to 1e-9
        assert row.lambda_max == pytest.approx(np.linalg.norm(delta, 2) ** 2, rel=1e-6)
        explicit = weights[row.layer_name].tensor.dense()
        assert row.lambda_max == pytest.approx(np.linalg.norm(explicit, 2) ** 2, rel=1e-9)
        assert row.norm == pytest.approx(np.sum(explicit ** 2), rel=1e-9)


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index(["layer_name", "slice_id"], drop=False).sort_index()


def test_merged_rows_equal_peft_merge_and_unload_and_base_rows_the_base(adapter):
    base, model, folder = adapter
    rows = ww_ray.analyze(folder, base_model=base)
    assert set(rows.weight_role) == {"base", "adapter_delta", "merged"}
    merged = _keyed(rows[rows.weight_role == "merged"])
    assert len(merged) == len(peft_deltas(model))
    reference = _keyed(ww_ray.analyze(model.merge_and_unload()))
    ref = reference.loc[merged.index]
    # peft merges in float32; ww_ray adds ΔW to the base in float64: float32 rounding apart
    for metric in ("lambda_max", "norm", "log_spectral_norm", "stable_rank", "entropy", "alpha"):
        np.testing.assert_allclose(merged[metric].astype(float), ref[metric].astype(float), rtol=2e-5, err_msg=metric)
    base_rows = _keyed(rows[rows.weight_role == "base"])
    alone = _keyed(ww_ray.analyze(base))
    assert list(base_rows.index) == list(alone.index)
    for metric in NUMERIC:
        np.testing.assert_allclose(base_rows[metric].astype(float), alone[metric].astype(float), rtol=1e-12,
                                   equal_nan=True, err_msg=metric)
    # layer_index is the base's: an adapted layer's three rows share it
    assert (rows.groupby("layer_name").layer_index.nunique() == 1).all()
    # the summary of an adapter analysed with its base is the merged model's
    assert ww_ray.summarize(rows)["alpha"] == pytest.approx(ww_ray.summarize(rows[rows.weight_role == "merged"])["alpha"])
    # analyze(BASE, adapter=FOLDER) is the same analysis
    same = ww_ray.analyze(base, adapter=folder)
    pd.testing.assert_frame_equal(same.drop(columns=["seconds"]), rows.drop(columns=["seconds"]))


def test_auto_base_reads_base_model_name_or_path(adapter, tmp_path, hub_offline):
    base, _, folder = adapter
    base_dir = tmp_path / "base"
    base.save_pretrained(str(base_dir))
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base_dir)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    rows = ww_ray.analyze(folder, base_model="auto")
    assert set(rows.weight_role) == {"base", "adapter_delta", "merged"}
    assert set(rows.base_model.dropna()) == {"base"}
    # a named base that cannot be opened: deltas only, with a warning
    config["base_model_name_or_path"] = "no-such-org/no-such-model"
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="cannot be opened"):
        rows = ww_ray.analyze(folder, base_model="auto", zoo_options={"cache_dir": str(tmp_path / "empty")})
    assert set(rows.weight_role) == {"adapter_delta"}


def test_finetune_against_base_delta_rows_are_exact(tmp_path):
    base = tiny_bert()
    tuned = copy.deepcopy(base)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in tuned.named_parameters():
            if name.endswith("weight") and parameter.ndim == 2:
                parameter.add_(0.002 * torch.randn(parameter.shape, generator=generator))
        tuned.encoder.layer[1].output.dense.weight.mul_(0.01)      # one layer collapses in scale
    rows = ww_ray.analyze(tuned, base_model=base)
    assert set(rows.weight_role) == {"weight", "base", "delta_vs_base"}
    deltas = _keyed(rows[rows.weight_role == "delta_vs_base"])
    base_state = dict(base.named_parameters())
    explicit = {name: (p.detach().double() - base_state[name].detach().double())
                for name, p in tuned.named_parameters() if name.endswith("weight") and p.ndim == 2}
    reference = _keyed(ww_ray.analyze(explicit))
    reference = reference[reference.layer_name.isin(deltas.layer_name)]
    assert list(deltas.index) == list(reference.index)
    for metric in NUMERIC:
        np.testing.assert_allclose(deltas[metric].astype(float), reference[metric].astype(float), rtol=1e-12,
                                   equal_nan=True, err_msg=metric)
    # the model's own rows and the summary are the fine-tune's, untouched by the base
    own = _keyed(ww_ray.analyze(tuned))
    np.testing.assert_allclose(_keyed(rows[rows.weight_role == "weight"]).alpha.astype(float),
                               own.alpha.astype(float), rtol=1e-12)
    assert ww_ray.summarize(rows)["alpha"] == pytest.approx(ww_ray.summarize(own)["alpha"], rel=1e-12)

    from ww_ray.analysis.shifts import base_scale_collapse, layer_shifts

    shifts = layer_shifts(rows)
    top = shifts.iloc[0]
    assert top.layer_name == "encoder.layer.1.output.dense"          # the layer that moved most
    assert top.relative_change == pytest.approx(
        np.linalg.norm(explicit["encoder.layer.1.output.dense.weight"])
        / np.linalg.norm(base_state["encoder.layer.1.output.dense.weight"].detach().double()), rel=1e-9)
    assert top.d_log_spectral_norm == pytest.approx(-4.0, abs=0.1)  # λmax × 1e-4
    collapsed = base_scale_collapse(rows)
    assert list(collapsed.layer_name) == ["encoder.layer.1.output.dense"]


def test_unsupported_adapters_say_why(tmp_path):
    _, _, folder = make_adapter(tmp_path, target_modules=["query"])
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    row = ww_ray.analyze(folder).iloc[0]
    assert row.status == "failed" and "DoRA" in row.error
    (folder / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "IA3"}))
    with pytest.raises(CheckpointError, match="IA3"):
        read_adapter_config(folder)
    (folder / "adapter_config.json").write_text(json.dumps({**config, "rank_pattern": {"query": 3}}))
    assert "says r=3" in ww_ray.analyze(folder).iloc[0].error
    # an adapter as peft initialises it (B = 0) has ΔW = 0: failed rows that say so
    untrained = make_adapter(tmp_path / "fresh", target_modules=["query"], init_lora_weights=True)[2]
    rows = ww_ray.analyze(untrained)
    assert (rows.status == "failed").all() and rows.error.str.contains("B starts at zero").all()


def test_conv_lora_is_a_failed_row(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3), torch.nn.Flatten(), torch.nn.Linear(64, 60))
    model = peft.get_peft_model(net, peft.LoraConfig(r=4, target_modules=["0", "2"], init_lora_weights=False))
    model.save_pretrained(str(tmp_path / "conv"))
    rows = ww_ray.analyze(tmp_path / "conv", min_evals=0).set_index("layer_name")
    assert rows.loc["0", "status"] == "failed" and "linear, Conv1D and embedding layers only" in rows.loc["0", "error"]
    assert rows.loc["2", "status"] == "ok" and rows.loc["2", "num_evals"] == 4


def test_lowrank_core_handles_rank_above_the_matrix_side():
    rng = np.random.default_rng(3)
    b, a = rng.standard_normal((5, 8)), rng.standard_normal((8, 40))   # r = 8 > N = 5
    explicit = np.sort(np.linalg.svd(0.3 * b @ a, compute_uv=False) ** 2)
    np.testing.assert_allclose(lowrank_eigenvalues(LowRankFactors(b, a, 0.3)), explicit, rtol=1e-12)


def test_report_lists_layers_that_moved_and_base_scale_collapse(tmp_path):
    from ww_ray.analysis.report import build_report
    from ww_ray.store.writer import commit_model

    base = tiny_bert()
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        tuned.encoder.layer[0].intermediate.dense.weight.mul_(0.1)   # λmax × 0.01: two decades down
        tuned.encoder.layer[1].attention.self.key.weight.add_(0.001)
    rows = ww_ray.analyze(tuned, base_model=base)
    rows = rows.assign(source="ft", model_id="tuned", revision="r1", run_id="20260101T000000.000000Z-adapters")
    summary = ww_ray.summarize(rows)
    commit_model(str(tmp_path / "root"), rows.to_dict("records"),
                 {"source": "ft", "model_id": "tuned", "revision": "r1", "run_id": "20260101T000000.000000Z-adapters",
                  "status": "ok", **{k: v for k, v in summary.items() if k in ("alpha", "log_spectral_norm", "num_layers")}})
    report = build_report(str(tmp_path / "root"), out_dir=str(tmp_path / "report"))
    page = report.html_path.read_text(encoding="utf-8")
    section = page[page.index("Against the base"):]
    assert "Layers that moved most" in section
    collapse = section[section.index("Scale collapse relative to the base"):]
    assert "): 1</h3>" in collapse and "encoder.layer.0.intermediate.dense" in collapse
    moved = section[:section.index("Scale collapse relative to the base")]
    # the collapsed layer moved most (‖ΔW‖/‖W‖ = 0.9); the key projection comes next
    assert moved.index("encoder.layer.0.intermediate.dense") < moved.index("encoder.layer.1.attention.self.key")


def test_hub_adapter_repo_and_card_linked_finetune(tmp_path, hub_online, monkeypatch):
    """Hub repos through an HfApi-compatible client over local folders (no network)."""
    import huggingface_hub
    from huggingface_hub.hf_api import ModelInfo

    from tests.test_zoos_hub import FakeHfApi
    from ww_ray.config import parse_config
    from ww_ray.zoos import hub
    from ww_ray.zoos.registry import enumerate_specs, load_layer_weights

    base, _, adapter_dir = make_adapter(tmp_path, target_modules=["query"])
    base_dir, tuned_dir = tmp_path / "base", tmp_path / "tuned"
    base.save_pretrained(str(base_dir))
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        tuned.encoder.layer[0].attention.self.query.weight.mul_(0.05)
    tuned.save_pretrained(str(tuned_dir))
    repos = {"org/lora": ("a" * 40, adapter_dir, "bert"), "org/base": ("b" * 40, base_dir, "bert"),
             "org/tuned": ("c" * 40, tuned_dir, "bert"), "org/orphan": ("d" * 40, tuned_dir, "bert")}

    class CardClient(FakeHfApi):
        def model_info(self, repo_id, revision=None, files_metadata=False):
            info = super().model_info(repo_id, revision, files_metadata)
            card = {"org/tuned": {"base_model": "org/base"}, "org/orphan": {"base_model": "org/gone"}}.get(repo_id, {})
            return ModelInfo(id=info.id, sha=info.sha, siblings=[{"rfilename": s.rfilename, "size": s.size}
                                                                  for s in info.siblings], cardData=card)

    client = CardClient(repos, [])
    monkeypatch.setattr(hub, "make_client", lambda: client)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: str(repos[repo_id][1]))
    config = parse_config({"zoos": [{"kind": "hub", "models": ["org/lora", "org/tuned", "org/orphan"],
                                     "base_model": "auto", "download": True}]})  # the fake Hub serves snapshots
    lora, tuned_spec, orphan = enumerate_specs(config)
    # a card naming a base that cannot be read: the model is analysed alone (auto), with a log line
    assert {w.role for w in load_layer_weights(orphan)} == {"weight"}
    assert lora.extra["adapter"] is True and lora.extra["allow_patterns"][:2] == ["adapter_model.safetensors",
                                                                                 "adapter_config.json"]
    assert tuned_spec.base_model == "org/base"
    deltas = list(load_layer_weights(lora))   # the adapter config names no base: deltas only
    assert {w.role for w in deltas} == {"adapter_delta"} and len(deltas) == 2
    weights = list(load_layer_weights(tuned_spec))
    roles = {w.role for w in weights}
    assert roles == {"weight", "base", "delta_vs_base"} and {w.base_model for w in weights} == {"org/base"}
    from ww_ray.api import analyze_weights
    rows = pd.DataFrame(analyze_weights(weights, resolve_options("paper")))
    from ww_ray.analysis.shifts import base_scale_collapse, layer_shifts
    assert layer_shifts(rows).iloc[0].layer_name == "encoder.layer.0.attention.self.query"
    assert list(base_scale_collapse(rows).layer_name) == ["encoder.layer.0.attention.self.query"]


def test_cli_analyze_with_base_model_prints_the_layers_that_moved(tmp_path, capsys):
    from ww_ray.cli import main

    base, _, folder = make_adapter(tmp_path, target_modules=["query"])
    base.save_pretrained(str(tmp_path / "base"))
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        tuned.encoder.layer[1].attention.self.query.weight.mul_(0.1)
    tuned.save_pretrained(str(tmp_path / "tuned"))
    assert main(["analyze", str(tmp_path / "tuned"), "--base-model", str(tmp_path / "base"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "delta_vs_base" in out and "layers that moved most" in out
    moved = out[out.index("layers that moved most"):].splitlines()
    assert moved[2].split()[0] == "encoder.layer.1.attention.self.query"
    assert "scale collapse against the base (log10 λmax down more than 0.5 decade): " \
           "encoder.layer.1.attention.self.query" in out
    assert main(["analyze", str(tmp_path / "base"), "--adapter", str(folder), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "adapter_delta" in out and "merged" in out


def test_modules_to_save_are_left_out_and_a_prefixed_base_still_pairs(tmp_path):
    base, _, folder = make_adapter(tmp_path, target_modules=["query"], modules_to_save=["pooler"])
    rows = ww_ray.analyze(folder)
    assert set(rows.weight_role) == {"adapter_delta"} and all(".query" in n for n in rows.layer_name)
    # a base whose names carry one more leading component (a task model's "bert.") pairs by the stripped path
    prefixed = {f"bert.{name}": p.detach() for name, p in base.named_parameters()}
    paired = ww_ray.analyze(folder, base_model=prefixed)
    merged = paired[paired.weight_role == "merged"]
    assert len(merged) == len(rows) and all(n.startswith("bert.encoder.") for n in merged.layer_name)
