"""Reported figures from model cards (``model-index``) and figures CSVs, through a Hub zoo, into a regression.

Cards are parsed by huggingface_hub's own ``ModelCard`` (offline, from README text); the Hub zoo runs
offline on a local Hugging Face cache (HF_HUB_OFFLINE=1); the regression runs on a real dataset root.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tests._rescan_util import write_weights
from tests._zoos_util import make_hf_cache
from ww_ray.analysis.regression import error_values, regress
from ww_ray.cli import main
from ww_ray.config import parse_config
from ww_ray.errors import ZooError
from ww_ray.store import commit_model, read_table
from ww_ray.zoos import hub
from ww_ray.zoos.figures import Figure, higher_is_better, read_figures_csv
from ww_ray.zoos.model_card import card_facts
from ww_ray.zoos.registry import enumerate_specs

SPLIT = "validation"


def card(accuracy: float | None = None, f1: float | None = None, base: str = "bert-base-uncased",
         split: str = SPLIT) -> str:
    metrics = [m for m in ({"type": "accuracy", "value": accuracy, "name": "Accuracy"} if accuracy is not None else None,
                           {"type": "f1", "value": f1} if f1 is not None else None) if m]
    index = [{"name": "m", "results": [{
        "task": {"type": "text-classification", "name": "Text Classification"},
        "dataset": {"name": "GLUE MRPC", "type": "glue", "config": "mrpc", "split": split},
        "metrics": metrics}]}]
    return f"---\nlicense: mit\nbase_model: {base}\nmodel-index: {json.dumps(index)}\n---\n# A model\n"


def test_card_figures_keep_what_they_measure():
    facts = card_facts(card(accuracy=0.86, f1=0.9))
    assert facts.base_model == "bert-base-uncased"
    accuracy, f1 = facts.figures
    assert accuracy == Figure(dataset="glue/mrpc", metric="accuracy", value=0.86, higher_is_better=True,
                              task="text-classification", split="validation", origin="model-index")
    assert f1.target == "glue/mrpc@validation:f1" and f1.value == 0.9
    # a card without model-index, or with broken YAML, has no figures and is no error
    assert card_facts("# just text").figures == ()
    assert card_facts("---\nmodel-index: [unclosed\n---\n").figures == ()


@pytest.mark.parametrize("metric, higher", [
    ("accuracy", True), ("acc_norm", True), ("F1", True), ("exact_match", True), ("rouge1", True), ("pass@1", True),
    ("eval_loss", False), ("perplexity", False), ("wer", False), ("top1_error", False), ("CER", False),
    ("mmlu", None)])
def test_higher_is_better_from_the_metric_name(metric, higher):
    assert higher_is_better(metric) is higher


def test_figures_csv_long_and_wide_join_on_model_and_revision(tmp_path):
    long = tmp_path / "long.csv"
    long.write_text("model_id,revision,benchmark,metric,score\n"
                    "org/a,,mmlu,accuracy,61.5\n"
                    f"org/a,{'1' * 40},hellaswag,acc_norm,80\n"
                    f"org/a,{'2' * 40},hellaswag,acc_norm,10\n"
                    "org/b,,wikitext,perplexity,12.5\n")
    table = read_figures_csv(long)
    a = table.figures_for("org/a", "1" * 40)
    assert [(f.target, f.value, f.higher_is_better) for f in a] == [
        ("hellaswag:acc_norm", 80.0, True), ("mmlu:accuracy", 61.5, True)]
    assert [f.target for f in table.figures_for("org/a", "3" * 40)] == ["mmlu:accuracy"]
    assert table.figures_for("org/b", None)[0].higher_is_better is False
    wide = tmp_path / "leaderboard.csv"
    wide.write_text("fullname,Type,#Params (B),Hub ❤️,ARC,MMLU,Average\n"
                    "org/a,pretrained,7.2,120,55.1,61.5,58.3\norg/c,chat,1.1,3,NA,40,40\n")
    board = read_figures_csv(wide)
    assert [(f.target, f.value) for f in board.figures_for("org/a", None)] == [
        ("arc:score", 55.1), ("mmlu:score", 61.5), ("average:score", 58.3)]
    assert [f.target for f in board.figures_for("org/c", None)] == ["mmlu:score", "average:score"]
    bad = tmp_path / "bad.csv"
    bad.write_text("model_id,benchmark,score\norg/a,mmlu,high\n")
    with pytest.raises(ZooError, match="line 2.*'high'"):
        read_figures_csv(bad)


def _models_frame(figures: list[list[dict]]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"source": "hf", "dataset": "gluemrpc", "architecture": "bert", "status": "ok",
                         "model_id": [f"m{i}" for i in range(len(figures))], "alpha": rng.uniform(2, 5, len(figures)),
                         "reported_figures": figures})


def test_regression_uses_only_comparable_figures_and_names_the_target():
    def fig(metric, value, split=SPLIT):
        return {"dataset": "glue/mrpc", "metric": metric, "split": split, "value": value, "higher_is_better": True}
    figures = [[fig("accuracy", 0.80), fig("f1", 0.7)], [fig("accuracy", 0.82)], [fig("accuracy", 0.85)],
               [fig("accuracy", 0.88)], [fig("f1", 0.9)], [fig("accuracy", 0.5, split="test")]]
    models = _models_frame(figures)
    fits = regress(models, metrics=["alpha"], min_models=4)
    (row,) = fits.to_dict("records")
    assert row["target"] == "figure:glue/mrpc@validation:accuracy" and row["n"] == 4
    assert row["model_ids"] == ["m0", "m1", "m2", "m3"]   # not the f1-only model, not the test-split one
    y = error_values(models, "figure:glue/mrpc@validation:f1")
    assert y.tolist()[0] == 0.7 and y.tolist()[4] == 0.9 and y.isna().sum() == 4
    assert regress(models, metrics=["alpha"], min_models=4, target="figure:glue/mrpc@validation:f1").empty
    with pytest.raises(ValueError, match="figure:<dataset>"):
        regress(models, metrics=["alpha"], target="figure:accuracy")


def test_hub_zoo_offline_figures_from_cards_and_csv_into_a_regression(tmp_path, monkeypatch, hub_offline, capsys):
    cache = tmp_path / "hf-cache"
    accuracies = [0.81, 0.84, 0.86, 0.9]
    repos = [f"lab/bert-{i}" for i in range(len(accuracies))] + ["lab/bert-f1-only"]
    for i, repo in enumerate(repos):
        folder = write_weights(tmp_path / "src" / repo.replace("/", "__"), [(128 + 32 * i, 64), (96, 64)], seed=i,
                               model_type="bert")
        (folder / "README.md").write_text(card(accuracy=accuracies[i]) if i < len(accuracies) else card(f1=0.8))
        make_hf_cache(cache, repo, folder, f"{i + 1:040x}", ["config.json", "model.safetensors", "README.md"])
    figures_csv = tmp_path / "leaderboard.csv"
    figures_csv.write_text("model_id,revision,benchmark,score\n"
                           f"lab/bert-0,{1:040x},mmlu,41.5\n"
                           f"lab/bert-0,{'9' * 40},mmlu,99\n")
    monkeypatch.setattr(hub, "make_client", lambda: pytest.fail("no Hub call may happen offline"))
    config_file = tmp_path / "zoo.yaml"
    config_file.write_text(json.dumps({"zoos": [{"kind": "hub", "models": repos, "cache_dir": str(cache),
                                                 "figures": str(figures_csv)}], "out": str(tmp_path / "out")}))
    specs = enumerate_specs(parse_config(json.loads(config_file.read_text())))
    first = specs[0]
    assert first.repo_kind == "full" and first.base_model == "bert-base-uncased"
    assert [(f.target, f.value, f.origin) for f in first.reported_figures] == [
        ("glue/mrpc@validation:accuracy", 0.81, "model-index"), ("mmlu:score", 41.5, "leaderboard.csv")]
    assert specs[1].dataset == "gluemrpc" and first.dataset is None   # bert-0's figures are on two datasets
    # `ww-ray zoo list` shows the figures with what they measure
    assert main(["zoo", "list", str(config_file)]) == 0
    listed = capsys.readouterr().out
    assert "glue/mrpc@validation:accuracy=0.84" in listed and "mmlu:score=41.5" in listed and "full" in listed

    from ww_ray.api import analyze_weights
    from ww_ray.engine.outcome import layer_rows, model_row
    from ww_ray.spectral.presets import resolve_options
    from ww_ray.zoos.registry import load_layer_weights

    options, root = resolve_options("paper"), tmp_path / "out"
    for spec in specs:
        spec = spec if spec.dataset else replace(spec, dataset="gluemrpc")   # one series for all five
        rows = analyze_weights(load_layer_weights(spec), options)
        commit_model(root, layer_rows(rows), model_row(spec, rows, "20261202T000000.000000Z-0000abcd", options,
                                                       timings={}, attempts=1))
    stored = read_table(root, "models")
    assert set(stored["repo_kind"]) == {"full"} and set(stored["base_model"]) == {"bert-base-uncased"}
    row0 = stored.set_index("model_id").loc["lab/bert-0", "reported_figures"]
    assert {(f["dataset"], f["metric"], f["split"], f["value"]) for f in row0} == {
        ("glue/mrpc", "accuracy", "validation", 0.81), ("mmlu", "score", None, 41.5)}
    assert main(["regress", str(root), "--min-models", "4", "--metrics", "alpha", "log_norm", "--no-write"]) == 0
    printed = capsys.readouterr().out
    assert "figure:glue/mrpc@validation:accuracy" in printed
    assert "accuracy on glue/mrpc@validation, as reported (higher is better" in printed
    fits = regress(stored, metrics=["alpha", "log_norm"], min_models=4)
    assert set(fits["target"]) == {"figure:glue/mrpc@validation:accuracy"} and set(fits["n"]) == {4}
    assert all("lab/bert-f1-only" not in ids for ids in fits["model_ids"])
