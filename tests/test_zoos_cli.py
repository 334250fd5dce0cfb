"""``ww-ray zoo list`` and ``ww-ray zoo show`` on real weights."""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from ww_ray.zoos import cli


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="ww-ray")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture()
def config_file(tmp_path: Path, shared_models: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"""
zoos:
  - kind: local
    path: {shared_models / "akamaster-resnet-cifar10"}
    metadata: {shared_models / "reported_accuracies.csv"}
  - kind: pytorchcv
    models: [resnet20_cifar10, pspnet_resnetd101b_voc, resnet200]
""")
    return path


def test_zoo_list_formats(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(["zoo", "list", str(config_file), "--format", "json"], capsys)
    records = json.loads(out)
    assert code == 0 and len(records) == 7
    assert [r["top1_error"] for r in records[:4]] == [8.27, 7.37, 6.90, 6.61]
    seg = records[5]
    assert (seg["model_id"], seg["reported_measure"], seg["reported_value"], seg["top1_error"]) == \
        ("pspnet_resnetd101b_voc", "miou", 81.44, None)
    assert records[6]["status"] == "skipped" and "no pretrained weights" in records[6]["reason"]

    code, out, _ = _run(["zoo", "list", str(config_file), "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["model_id"] == "resnet20-12fca82f" and rows[0]["top1_error"] == "8.27"

    code, out, _ = _run(["zoo", "list", str(config_file)], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split()[:3] == ["source", "model_id", "revision"]
    assert "resnet20_cifar10" in lines[5] and "top1_error=5.97" in lines[5] and "ready" in lines[5]
    assert lines[-1] == "7 model(s)"


def test_zoo_list_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("zoos:\n  - kind: nowhere\n")
    code, _, err = _run(["zoo", "list", str(bad)], capsys)
    assert code == 2 and "zoos[0].kind must be one of" in err


def test_zoo_show(akamaster_dir: Path, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, out, _ = _run(["zoo", "show", str(akamaster_dir / "resnet20-12fca82f.th")], capsys)
    assert code == 0
    assert "revision      12fca82f" in out and "params        269722" in out
    assert "    0  conv2d          1  16x3x3x3               conv1" in out
    assert "   19  linear          1  10x64                  linear" in out
    assert out.strip().endswith("20 layer weight(s)")
    code, _, err = _run(["zoo", "show", str(tmp_path / "absent.pt")], capsys)
    assert code == 2 and "no such checkpoint" in err
