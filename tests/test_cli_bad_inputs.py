"""Bad inputs to the real ``ww-ray`` command line: one clear line on stderr, exit 2, nothing written.

Each test runs the installed CLI in a fresh process (``python -m ww_ray.cli``) on a fixture it builds.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]


def _ww_ray(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}
    return subprocess.run([sys.executable, "-m", "ww_ray.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def _good_zoo(folder: Path) -> Path:
    folder.mkdir()
    save_file({"fc.weight": torch.randn(80, 60, generator=torch.Generator().manual_seed(0))}, str(folder / "m.safetensors"))
    return folder


def _assert_refused(result: subprocess.CompletedProcess, message: str, out: Path) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ww-ray sweep: ") and message in lines[0], result.stderr
    assert not out.exists()  # refused before any work: no dataset root, no rows, no manifest


def test_a_symlink_loop_as_the_zoo_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    config = tmp_path / "sweep.yaml"
    config.write_text("zoos:\n  - kind: local\n    path: loop\nout: results\n")
    result = _ww_ray("sweep", str(config), cwd=tmp_path)
    _assert_refused(result, "zoos[0].path: loop cannot be resolved", tmp_path / "results")


def test_a_bad_run_id_is_refused_before_any_model_is_analysed(tmp_path: Path) -> None:
    _good_zoo(tmp_path / "zoo")
    config = tmp_path / "sweep.yaml"
    config.write_text("zoos:\n  - kind: local\n    path: zoo\nout: results\n")
    result = _ww_ray("sweep", str(config), "--run-id", "../../escape", cwd=tmp_path)
    _assert_refused(result, "run_id must be 1-200 characters", tmp_path / "results")
    assert not (tmp_path.parent / "escape").exists()


def test_a_typo_in_a_zoo_key_names_the_key_and_the_close_match(tmp_path: Path) -> None:
    _good_zoo(tmp_path / "zoo")
    config = tmp_path / "sweep.yaml"
    config.write_text("zoos:\n  - knd: local\n    path: zoo\nout: results\n")
    result = _ww_ray("sweep", str(config), cwd=tmp_path)
    _assert_refused(result, "zoos[0]: unknown key 'knd' (did you mean 'kind'?)", tmp_path / "results")
    assert "got None" not in result.stderr


def test_sweep_preset_and_conv_method_overrides_are_validated(tmp_path: Path) -> None:
    _good_zoo(tmp_path / "zoo")
    config = tmp_path / "sweep.yaml"
    config.write_text("zoos:\n  - kind: local\n    path: zoo\nout: results\n")
    result = _ww_ray("sweep", str(config), "--preset", "fast", cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice: 'fast'" in result.stderr
    help_text = _ww_ray("sweep", "--help", cwd=tmp_path).stdout
    assert "--preset" in help_text and "--conv-method" in help_text
