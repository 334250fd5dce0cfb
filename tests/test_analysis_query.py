"""``ww-ray query``: the documented example questions on a real dataset, output formats, the CLI."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from _analysis_util import build_akamaster_root
from ww_ray.analysis.query import EXAMPLES, query, resolve_sql, write_result
from ww_ray.cli import main
from ww_ray.store import read_table


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_akamaster_root(tmp_path_factory.mktemp("aka") / "root")


def test_top_alpha_layers(root: Path) -> None:
    got = query(root, resolve_sql(None, "top_alpha_layers")).df()
    layers = read_table(root, "layers")
    expected = layers[layers.status == "ok"].nlargest(10, "alpha")
    assert len(got) == 10 and got["alpha"].tolist() == pytest.approx(expected["alpha"].tolist())
    assert got["alpha"].is_monotonic_decreasing and set(got["warning"]) <= {"under-trained", None}


def test_mean_alpha_per_architecture(root: Path) -> None:
    got = query(root, EXAMPLES["mean_alpha_by_arch"][1]).df().set_index("architecture")
    layers = read_table(root, "layers")
    ok = layers[layers.status == "ok"]
    expected = ok.groupby("architecture")["alpha"].mean()
    assert got["mean_alpha"].to_dict() == pytest.approx(expected.round(4).to_dict())
    assert got["models"].tolist() == [4] and got["layers"].tolist() == [len(ok)]


def test_under_trained_and_failed_examples(root: Path) -> None:
    under = query(root, EXAMPLES["under_trained"][1]).df()
    layers = read_table(root, "layers")
    counts = layers[(layers.status == "ok") & (layers.alpha > 6)].groupby("model_id").size()
    assert under.set_index("model_id")["under_trained_layers"].to_dict() == counts.to_dict()
    assert query(root, EXAMPLES["failed_models"][1]).df().empty
    assert query(root, EXAMPLES["runs"][1]).df()["kind"].tolist() == ["test-sweep"]


def test_output_formats(root: Path, tmp_path: Path) -> None:
    relation = query(root, "SELECT model_id, top1_error FROM models ORDER BY top1_error")
    text = write_result(relation, "table", None)
    assert "resnet56-4bfd9763" in text and text.strip().endswith("(4 rows)")
    csv = write_result(relation, "csv", None)
    assert csv.splitlines()[0] == "model_id,top1_error" and csv.splitlines()[1] == "resnet56-4bfd9763,6.61"
    write_result(relation, "parquet", tmp_path / "out.parquet")
    assert pq.read_table(tmp_path / "out.parquet").column("top1_error").to_pylist() == [6.61, 6.9, 7.37, 8.27]
    with pytest.raises(ValueError, match="needs --out"):
        write_result(relation, "parquet", None)
    with pytest.raises(ValueError, match="unknown example"):
        resolve_sql(None, "nope")


def test_cli_query(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["query", str(root), "--example", "mean_alpha_by_arch"]) == 0
    assert "akamaster-cifar-resnet-optionA" in capsys.readouterr().out
    out = tmp_path / "q.csv"
    assert main(["query", str(root), "SELECT count(*) AS n FROM layers", "--format", "csv", "--out", str(out)]) == 0
    layers = read_table(root, "layers")
    assert pd.read_csv(out)["n"].tolist() == [len(layers)]
    assert main(["query", str(root), "--list-examples"]) == 0
    assert "top_alpha_layers" in capsys.readouterr().out
    assert main(["query", str(tmp_path / "missing"), "SELECT 1"]) == 2
    assert "no dataset root" in capsys.readouterr().err
    assert main(["query", str(root), "SELECT nope FROM models"]) == 2
    assert 'column "nope" not found' in capsys.readouterr().err
