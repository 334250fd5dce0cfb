"""What a new user meets in the first hour (issue 14): exit codes, full messages, summary lines, help texts.

Covers: a sweep that analysed no model exits 3 and prints every distinct failure once, in full; the
Ctrl-C hint after ``--no-resume``; ``ww-ray analyze``'s coverage line, ``compound`` explained, one clear
error for an unreadable source; ``ww_ray.analyze``'s progress bar (off when stderr is not a terminal)
and its warning before an expensive method; help texts, ``--version``, ``--example runs``; and that a
CPU spectral worker imports neither torch nor pandas (start-up).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd
import pytest
import torch

import ww_ray
from ww_ray.api import ExpensiveAnalysisWarning
from ww_ray.cli import build_parser, main
from ww_ray.engine.cli import sweep_exit_status
from ww_ray.engine.progress import Stages, format_summary
from ww_ray.engine.results import ModelResult, SweepResult
from ww_ray.errors import EXIT_ALL_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_ZOO_ERRORS
from ww_ray.spectral_cli import coverage_line

from conftest import REPO

LONG_ERROR = ("ZooUnavailableError: cannot fetch pytorchcv weights for resnet20_cifar10 (github.com cannot be "
              "reached). To work offline, put the file resnet20_cifar10-0597-9b0024ac.pth (from https://github.com/"
              "osmr/imgclsmob/releases/download/v0.0.163/resnet20_cifar10-0597-9b0024ac.pth.zip, unzipped) into "
              "/root/.torch/models and point the zoo there with `root:` in the config (or $WW_RAY_PYTORCHCV_ROOT).")


def _result(results: list[ModelResult], **kw) -> SweepResult:
    base = dict(run_id="run-1", root="/data/ww", status="completed", planned=len(results), already_done=0,
                results=results, seconds=3.0)
    base.update(kw)
    return SweepResult(**base)


def _failed(name: str, error: str) -> ModelResult:
    return ModelResult("pytorchcv", name, "r", "failed", error, 1)


# ---- the sweep's summary and exit status ---------------------------------------------------------

def test_summary_prints_each_distinct_failure_once_in_full_with_its_count():
    other = "ZooError: no such model " + "x" * 400
    result = _result([_failed("a", LONG_ERROR), _failed("b", LONG_ERROR), _failed("c", other)])
    text = format_summary(result)
    assert text.count(LONG_ERROR) == 1 and text.count(other) == 1      # in full (> 160 characters), once each
    assert "[1] 2 models: " + LONG_ERROR in text
    assert "[2] 1 model: " + other in text
    assert "…" not in text
    rows = [line for line in text.splitlines() if line.strip().startswith("pytorchcv/")]
    assert [row.split()[-1] for row in rows] == ["[1]", "[1]", "[2]"]
    assert f"exit status {EXIT_ALL_FAILED}" in text


@pytest.mark.parametrize("statuses, kw, expected", [
    (["failed"] * 3, {}, EXIT_ALL_FAILED),
    (["failed", "skipped"], {}, EXIT_ALL_FAILED),
    (["failed", "ok"], {}, EXIT_OK),
    (["skipped"], {}, EXIT_OK),                       # deliberate skips only: nothing went wrong
    ([], {"planned": 0, "already_done": 4}, EXIT_OK),  # all done already (resume)
    (["ok"], {"zoo_errors": [{"zoo": 0, "kind": "hub", "error": "x"}]}, EXIT_ZOO_ERRORS),
    (["failed"], {"status": "interrupted"}, EXIT_INTERRUPTED),
])
def test_sweep_exit_status(statuses, kw, expected):
    results = [ModelResult("z", f"m{i}", "r", s, None if s == "ok" else "boom", 1) for i, s in enumerate(statuses)]
    assert sweep_exit_status(_result(results, **kw)) == expected


def test_interrupted_no_resume_run_says_what_actually_resumes():
    result = _result([ModelResult("z", "a", "r", "ok", None, 1)], status="interrupted", planned=3,
                     unfinished=[("z", "b", "r"), ("z", "c", "r")])
    resumed = format_summary(result, resume=True)
    assert "run the same command again" in resumed
    fresh = format_summary(result, resume=False)
    assert "run the same command again" not in fresh
    assert "without --no-resume" in fresh and "resume off (--no-resume)" in fresh


def test_start_up_lines_and_silence_when_off(capsys):
    Stages(enabled=False).say("starting local Ray…")
    assert capsys.readouterr().err == ""
    stages = Stages(enabled=True)
    stages.say("starting local Ray…")
    seconds = stages.done("Ray ready")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "ww-ray sweep: starting local Ray…"
    assert err[1] == f"ww-ray sweep: Ray ready in {seconds:.1f} s"


def test_sweep_help_documents_the_exit_status():
    text = _help("sweep")
    assert "3 when it ran but analysed no model" in " ".join(text.split())
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "exits with status 3" in readme


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_where_every_model_fails_exits_3_with_full_messages(tmp_path, capsys):
    import ray

    from ww_ray.engine.cluster import local_init_options, loopback_only

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for name in ("a", "b"):
        (zoo / f"{name}.safetensors").write_bytes(os.urandom(2048))
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"zoos": [{"kind": "local", "path": str(zoo)}], "out": str(tmp_path / "out"),
                                  "ray": {"workers": 1}}), encoding="utf-8")
    if ray.is_initialized():
        ray.shutdown()
    with loopback_only():
        ray.init(**local_init_options(1, loads=1), logging_level=logging.WARNING)
    try:
        code = main(["sweep", str(config), "--no-progress"])
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    assert code == EXIT_ALL_FAILED
    assert "2 planned, 0 ok, 2 failed" in out
    errors = [line for line in out.splitlines() if line.startswith("  [")]
    assert len(errors) == 2 and all("CheckpointError" in line for line in errors)


# ---- ww-ray analyze ------------------------------------------------------------------------------

def test_analyze_summary_says_what_it_averaged_over_and_why(akamaster_dir, capsys):
    code = main(["analyze", str(akamaster_dir / "resnet20-12fca82f.th"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "averaged over 45 of 172 matrices (5 layers); left out: 127 skipped: M < min_evals=50 (preset paper)" in out
    assert "compound: mean of the per-layer means" in out


def test_coverage_line_groups_reasons_with_counts():
    rows = pd.DataFrame({
        "layer_index": [0, 1, 2, 3, 4], "layer_type": ["linear"] * 5,
        "status": ["ok", "skipped", "skipped", "skipped", "failed"],
        "error": [None, "M=16 < min_evals=50 (preset paper)", "M=32 < min_evals=50 (preset paper)",
                  "N=60000 > max_n=50000 (preset ww)", "weights contain NaN or Inf"]})
    assert coverage_line(rows) == ("averaged over 1 of 5 matrices (1 layer); left out: 3 skipped: "
                                   "2 × M < min_evals=50 (preset paper), 1 × N > max_n=50000 (preset ww); "
                                   "1 failed: weights contain NaN or Inf")


def test_analyze_of_a_missing_file_is_one_error_line_and_exit_2(tmp_path, capsys):
    code = main(["analyze", str(tmp_path / "nope.th")])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ww-ray analyze: cannot read ") and "nope.th" in lines[0]
    # the API itself still answers with its failed row
    frame = ww_ray.analyze(str(tmp_path / "nope.th"))
    assert list(frame["status"]) == ["failed"] and "nope.th" in frame["error"].iloc[0]


def test_compound_is_explained_in_help_readme_and_docstring():
    assert "mean of the per-layer means" in " ".join(_help("analyze").split())
    assert "compound" in ww_ray.summarize.__doc__ and "per-layer" in ww_ray.summarize.__doc__
    assert "`compound`" in (REPO / "README.md").read_text(encoding="utf-8")


# ---- ww_ray.analyze in-process: progress and warnings ---------------------------------------------

def _conv_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3), torch.nn.Conv2d(64, 96, 3), torch.nn.Flatten(),
                               torch.nn.Linear(300, 200))


def test_progress_bar_is_off_when_stderr_is_not_a_terminal_and_on_when_asked(capsys):
    quiet = ww_ray.analyze(_conv_model())            # capsys: stderr is not a terminal
    assert capsys.readouterr().err == ""
    shown = ww_ray.analyze(_conv_model(), progress=True)
    err = capsys.readouterr().err
    assert "ww_ray.analyze Sequential" in err and f"{len(shown)}matrix" in err.replace(" ", "")
    ww_ray.analyze(_conv_model(), progress=False)
    assert capsys.readouterr().err == ""
    # layer-by-layer batches for the bar give the same numbers
    numeric = ["N", "M", "alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank"]
    np.testing.assert_allclose(quiet[numeric].to_numpy(float), shown[numeric].to_numpy(float), rtol=1e-12)


def test_fft_warns_before_starting_with_the_number_of_eigenproblems():
    with pytest.warns(ExpensiveAnalysisWarning, match=r"544 complex eigenproblems per Conv2d layer"):
        ww_ray.analyze(torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3)), conv_method="fft", progress=False)


# ---- help, version, query examples ----------------------------------------------------------------

def _help(*command: str) -> str:
    """The ``--help`` text of ``ww-ray COMMAND`` as argparse prints it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return out.getvalue()


def test_regress_query_report_have_descriptions_and_examples():
    for command in ("regress", "query", "report"):
        text = _help(command)
        assert "examples:" in text and f"ww-ray {command} ww-results" in text, command
    assert "smallest series" in _help("report")                    # --min-models has help


def test_analyze_options_have_help():
    text = " ".join(_help("analyze").split())
    for option, phrase in (("--preset", "Martin, Peng & Mahoney"), ("--conv-method", "Sedghi"),
                           ("--fit", "truncated power law"), ("--device", "a GPU when torch sees one")):
        assert option in text and phrase in text, option


def test_version_comes_from_the_installed_metadata(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    try:
        expected = version("ww_ray")
    except PackageNotFoundError:
        expected = ww_ray.__version__
    assert capsys.readouterr().out.strip() == f"ww-ray {expected}"


def test_example_runs_is_a_readable_table(tmp_path, capsys):
    from ww_ray.store import write_manifest

    write_manifest(str(tmp_path), "20260101T000000.000000Z-aaaaaaaa", {
        "kind": "sweep", "status": "completed", "preset": "paper", "started_at": "2026-01-01T00:00:00+00:00",
        "counts": {"planned": 4, "ok": 3, "failed": 1, "skipped": 0}, "timings": {"seconds": 12.34},
        "config": {"zoos": [{"kind": "local", "path": "/x" * 50}]}})
    assert main(["query", str(tmp_path), "--example", "runs"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "{" not in out and len(lines) == 3
    assert lines[0].split() == ["run_id", "kind", "status", "preset", "started_at", "seconds", "counts"]
    assert "sweep" in lines[1] and "12.3" in lines[1] and "planned=4 ok=3 failed=1" in lines[1]


# ---- start-up: what a CPU spectral worker imports -------------------------------------------------

def test_a_cpu_spectral_worker_imports_neither_torch_nor_pandas():
    code = ("import sys, ww_ray.engine.worker as w; w.SpectralWorker(1, 'cpu'); "
            "print(sorted(m for m in ('torch', 'pandas', 'duckdb', 'pyarrow') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=300, check=True).stdout
    assert out.strip() == "[]"


def test_zoo_list_shows_the_file_each_model_needs_and_its_url(capsys) -> None:
    """configs/quickstart.yaml sends an offline user to `ww-ray zoo list` for the files to fetch by hand."""
    assert main(["zoo", "list", str(REPO / "configs" / "quickstart.yaml")]) == EXIT_OK
    text = capsys.readouterr().out
    assert "file" in text.splitlines()[0] and "resnet20_cifar10-0597-9b0024ac.pth" in text
    assert main(["zoo", "list", str(REPO / "configs" / "quickstart.yaml"), "--format", "json"]) == EXIT_OK
    records = {r["model_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["resnet20_cifar10"]["file"] == "resnet20_cifar10-0597-9b0024ac.pth"
    assert records["resnet20_cifar10"]["url"] == ("https://github.com/osmr/imgclsmob/releases/download/v0.0.163/"
                                                  "resnet20_cifar10-0597-9b0024ac.pth.zip")


@pytest.mark.parametrize("batches, status, zoo_error, expected", [
    ([["ok", "failed"]], "completed", None, EXIT_OK),
    ([["failed"], ["failed", "skipped"]], "completed", None, EXIT_ALL_FAILED),
    ([], "completed", None, EXIT_OK),                    # nothing new on the Hub is not a failure
    ([["ok"]], "completed", "listing failed", EXIT_ZOO_ERRORS),
    ([["failed"]], "interrupted", None, EXIT_INTERRUPTED),
])
def test_rescan_exit_status(batches, status, zoo_error, expected):
    from ww_ray.rescan.cli import rescan_exit_status
    from ww_ray.rescan.run import RescanResult

    sweeps = [_result([ModelResult("z", f"m{i}", "r", s, None if s == "ok" else "boom", 1)
                       for i, s in enumerate(batch)]) for batch in batches]
    zoos = [type("Scan", (), {"index": 0, "error": zoo_error})()]
    result = RescanResult(run_id="r", root="/data", status=status, zoos=zoos, selection=None, selected=[],
                          pending={}, batches=sweeps)
    assert rescan_exit_status(result) == expected
