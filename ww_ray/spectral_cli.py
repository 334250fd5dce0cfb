"""``ww-ray analyze SOURCE``: analyse one model in-process and print its per-layer table and summary.

    ww-ray analyze ../shared/models/akamaster-resnet-cifar10/resnet20-12fca82f.th --preset ww
    ww-ray analyze path/to/hf-model-folder --out layers.parquet
    ww-ray analyze model.th --conv-method fft --randomize      # slow: says how slow before it starts
    ww-ray analyze my-lora-adapter/ --base-model auto          # adapter deltas, base and merged rows
    ww-ray analyze finetuned/ --base-model base/               # + ΔW = W − W_base and the layers that moved most

The summary says what it averaged over and why the rest was left out ("averaged over 45 of 172
matrices; 127 skipped: M < min_evals=50 (preset paper)"). Each metric is shown twice: the mean over
the analysed matrices, and ``compound``, the mean of the per-layer means, so that a conv layer cut
into k×k slices (``slices``) counts once, like a linear layer, instead of k² times. The models table
of a sweep holds both (``alpha`` and ``alpha_compound`` ...).

Exit status: 0 when at least one matrix was analysed or skipped; 1 when the source holds no weight
tensors or every matrix failed; 2 when the source cannot be read at all (missing file, not a
checkpoint, unsafe pickle, unreachable zoo): one line on stderr says why.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from ww_ray.errors import EXIT_USAGE
from ww_ray.spectral.presets import CONV_METHODS, PRESETS

_TABLE_COLUMNS = ["layer_index", "layer_name", "layer_type", "weight_role", "slice_id", "N", "M", "num_evals", "alpha",
                  "alpha_weighted", "log_norm", "log_spectral_norm", "log_alpha_norm", "D", "num_spikes",
                  "warning", "status", "error"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("analyze", help="analyse one model's weight matrices in-process",
                                   description=__doc__.split("\n\n")[0],
                                   epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="checkpoint file, Hugging Face folder, or zoo URI (pytorchcv:NAME, hf:ORG/NAME)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                        help="paper (default): Martin, Peng & Mahoney 2021 — conv 'slices' rescaled by k/sqrt(2), "
                             "matrices with M < 50 skipped; ww: WeightWatcher 0.7.7 analyze() defaults "
                             "(conv 'pooled', M·rf in [8, 15000], N <= 50000)")
    parser.add_argument("--conv-method", choices=CONV_METHODS, default=None,
                        help="how a conv weight becomes matrices (default: the preset's): slices — one per k×k "
                             "position; stacked — the positions side by side; fft — the convolution operator's "
                             "singular values (Sedghi et al. 2019; slow: 544 eigenproblems per layer at fft_size 32); "
                             "pooled — WeightWatcher's")
    parser.add_argument("--randomize", action="store_true", help="add the randomized control (rand_distance, num_traps)")
    parser.add_argument("--fit", choices=["PL", "TPL"], default=None,
                        help="tail fit (default: the preset's, PL): PL power law; TPL truncated power law")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                        help="where the eigenvalues are computed (default auto: a GPU when torch sees one)")
    parser.add_argument("--base-model", default=None,
                        help="the base SOURCE was made from (path or zoo URI; 'auto' for an adapter: its config's "
                             "base_model_name_or_path): adds the base's rows and ΔW (fine-tune) or the merged "
                             "W₀ + ΔW (adapter), and prints the layers that moved most")
    parser.add_argument("--adapter", default=None, help="a LoRA adapter folder to analyse on top of SOURCE (the base)")
    parser.add_argument("--out", type=Path, default=None, help="write all rows to FILE.parquet or FILE.csv")
    parser.add_argument("--all-rows", action="store_true", help="also print skipped rows")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when "
                        "stderr is not a terminal)")
    parser.set_defaults(func=run)


def _reason(error: object) -> str:
    """A skip reason with its row's own numbers taken out, so that equal reasons group:
    ``M=16 < min_evals=50 (preset paper)`` → ``M < min_evals=50 (preset paper)``.

    >>> _reason("M=16 < min_evals=50 (preset paper)")
    'M < min_evals=50 (preset paper)'
    """
    text = " ".join(str(error or "no reason given").split())
    text = re.sub(r"\b(M\*rf|M|N)=\d+ ([<>])", r"\1 \2", text)
    return re.sub(r"shape \([^)]*\)", "shape (…)", text)


def coverage_line(frame: pd.DataFrame) -> str:
    """One line: what the summary averaged over, and why the other rows were left out (with counts).

    >>> rows = pd.DataFrame({"layer_index": [0, 1, 2, 3], "layer_type": ["embedding", "linear", "linear", "linear"],
    ...                      "status": ["ok", "ok", "skipped", "failed"],
    ...                      "error": [None, None, "M=16 < min_evals=50 (preset paper)", "weights contain NaN or Inf"]})
    >>> print(coverage_line(rows))
    averaged over 1 of 4 matrices (1 layer); left out: 1 embedding (the paper leaves embeddings out); 1 skipped: M < min_evals=50 (preset paper); 1 failed: weights contain NaN or Inf
    """
    status = frame["status"]
    embedding = (frame["layer_type"] == "embedding") & (status == "ok")
    used = frame[(status == "ok") & ~embedding]
    parts = [f"averaged over {len(used)} of {len(frame)} matrices "
             f"({used['layer_index'].nunique()} layer{'s' if used['layer_index'].nunique() != 1 else ''})"]
    left = []
    if embedding.any():
        left.append(f"{int(embedding.sum())} embedding (the paper leaves embeddings out)")
    for name in ("skipped", "failed"):
        reasons = Counter(_reason(e) for e in frame.loc[status == name, "error"])
        if reasons:
            total = sum(reasons.values())
            detail = ", ".join(reason if len(reasons) == 1 else f"{n} × {reason}" for reason, n in reasons.most_common())
            left.append(f"{total} {name}: {detail}")
    return "; ".join(parts + ["left out: " + "; ".join(left)]) if left else parts[0]


def _format_table(frame: pd.DataFrame) -> str:
    columns = [c for c in _TABLE_COLUMNS if c in frame]
    if "weight_role" in frame and set(frame["weight_role"].dropna()) <= {"weight"}:
        columns.remove("weight_role")   # a plain analysis: every row is the model's own weight
    shown = frame[columns].copy()
    shown["slice_id"] = shown["slice_id"].astype("Int64")
    for column in ("warning", "error"):
        if column in shown:
            shown[column] = shown[column].fillna("")
    with pd.option_context("display.max_rows", 500, "display.width", 200, "display.max_colwidth", 48,
                           "display.float_format", "{:.4g}".format):
        return shown.to_string(index=False)


def _unreadable(frame: pd.DataFrame) -> str | None:
    """The error of a source that could not be read at all (``analyze`` gives one failed row, no layer)."""
    if len(frame) == 1 and frame["status"].iloc[0] == "failed" and frame["layer_name"].isna().iloc[0]:
        return str(frame["error"].iloc[0])
    return None


def run(args: argparse.Namespace) -> int:
    import ww_ray

    overrides = {k: v for k, v in {"conv_method": args.conv_method, "fit": args.fit, "device": args.device}.items()
                 if v is not None}
    if args.randomize:
        overrides["randomize"] = True
    try:
        frame = ww_ray.analyze(args.source, preset=args.preset, progress=False if args.no_progress else None,
                               base_model=args.base_model, adapter=args.adapter, **overrides)
    except ValueError as exc:  # an option the preset cannot take (e.g. fft_size smaller than a kernel)
        print(f"ww-ray analyze: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = _unreadable(frame)
    if problem is not None:
        print(f"ww-ray analyze: cannot read {args.source}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if len(frame) == 1 and frame["status"].iloc[0] == "skipped" and frame["layer_name"].isna().iloc[0]:
        # left out on purpose as a whole (a GPTQ/AWQ/bitsandbytes checkpoint): nothing to analyse
        print(f"ww-ray analyze: {args.source} skipped: {frame['error'].iloc[0]}", file=sys.stderr)
        return 1
    if frame.empty:
        print(f"ww-ray analyze: {args.source} holds no weight tensors (a checkpoint with an empty state dict, "
              "or a safetensors file with an empty header): nothing to analyse", file=sys.stderr)
        return 1
    printed = frame if args.all_rows else frame[frame["status"] != "skipped"]
    print(_format_table(printed))
    counts = frame["status"].value_counts().to_dict()
    print(f"\n{len(frame)} rows: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
          + ("" if args.all_rows or not counts.get("skipped") else " (--all-rows prints the skipped ones)"))
    from ww_ray.analysis.shifts import BASE_COLLAPSE_DECADES, base_scale_collapse, layer_shifts, primary_rows

    print(coverage_line(primary_rows(frame)))
    moved = layer_shifts(frame)
    if len(moved):
        columns = ["layer_name", "relative_change", "d_alpha", "d_log_spectral_norm", "d_log_norm"]
        if moved["slice_id"].notna().any():
            columns.insert(1, "slice_id")
        print("\nlayers that moved most against the base (relative_change = ‖ΔW‖_F / ‖W_base‖_F):")
        with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
            print(moved[columns].head(10).to_string(index=False))
        collapsed = base_scale_collapse(frame)
        print(f"scale collapse against the base (log10 λmax down more than {BASE_COLLAPSE_DECADES:g} decade): "
              + (", ".join(collapsed["layer_name"]) if len(collapsed) else "none"))
    summary = ww_ray.summarize(frame)
    print("summary: mean over the analysed matrices; compound: mean of the per-layer means "
          "(a conv layer's slices count once)")
    print(f"  {'metric':20s} {'mean':>10s} {'compound':>10s}")
    for name, value in summary.items():
        if isinstance(value, float) and not math.isnan(value) and not name.endswith("_compound"):
            print(f"  {name:20s} {value:10.4f} {summary.get(name + '_compound', math.nan):10.4f}")
    print(f"  num_layers           {summary['num_layers']}   failed layers {summary['num_failed_layers']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.out.suffix == ".csv":
            frame.to_csv(args.out, index=False)
        else:
            frame.to_parquet(args.out, index=False)
        print(f"wrote {len(frame)} rows to {args.out}")
    only_failures = len(frame) > 0 and set(frame["status"]) == {"failed"}
    return 1 if only_failures else 0
