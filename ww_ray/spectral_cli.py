"""``ww-ray analyze SOURCE``: analyse one model in-process and print its per-layer table and summary.

    ww-ray analyze ../shared/models/akamaster-resnet-cifar10/resnet20-12fca82f.th --preset ww
    ww-ray analyze path/to/hf-model-folder --out layers.parquet
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from ww_ray.spectral.presets import CONV_METHODS, PRESETS

_TABLE_COLUMNS = ["layer_index", "layer_name", "layer_type", "slice_id", "N", "M", "num_evals", "alpha",
                  "alpha_weighted", "log_norm", "log_spectral_norm", "log_alpha_norm", "D", "num_spikes",
                  "warning", "status", "error"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("analyze", help="analyse one model's weight matrices in-process",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="checkpoint file, Hugging Face folder, or zoo URI (pytorchcv:NAME, hf:ORG/NAME)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    parser.add_argument("--conv-method", choices=CONV_METHODS, default=None)
    parser.add_argument("--randomize", action="store_true", help="add the randomized control (rand_distance, num_traps)")
    parser.add_argument("--fit", choices=["PL", "TPL"], default=None)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    parser.add_argument("--out", type=Path, default=None, help="write all rows to FILE.parquet or FILE.csv")
    parser.add_argument("--all-rows", action="store_true", help="also print skipped rows")
    parser.set_defaults(func=run)


def _format_table(frame: pd.DataFrame) -> str:
    shown = frame[[c for c in _TABLE_COLUMNS if c in frame]].copy()
    shown["slice_id"] = shown["slice_id"].astype("Int64")
    with pd.option_context("display.max_rows", 500, "display.width", 200, "display.max_colwidth", 48,
                           "display.float_format", "{:.4g}".format):
        return shown.to_string(index=False)


def run(args: argparse.Namespace) -> int:
    import ww_ray

    overrides = {k: v for k, v in {"conv_method": args.conv_method, "fit": args.fit, "device": args.device}.items()
                 if v is not None}
    if args.randomize:
        overrides["randomize"] = True
    frame = ww_ray.analyze(args.source, preset=args.preset, **overrides)
    if frame.empty:
        print(f"ww-ray analyze: {args.source} holds no weight tensors (a checkpoint with an empty state dict, "
              "or a safetensors file with an empty header): nothing to analyse", file=sys.stderr)
        return 1
    printed = frame if args.all_rows else frame[frame["status"] != "skipped"]
    print(_format_table(printed))
    counts = frame["status"].value_counts().to_dict()
    print(f"\n{len(frame)} rows: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    summary = ww_ray.summarize(frame)
    print("summary (mean over analysed matrices, embeddings left out):")
    for name, value in summary.items():
        if isinstance(value, float) and not math.isnan(value) and not name.endswith("_compound"):
            print(f"  {name:20s} {value:.4f}   compound {summary.get(name + '_compound', math.nan):.4f}")
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
