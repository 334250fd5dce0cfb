"""``ww-ray zoo``: list the models a sweep config selects, or show one model's layers.

    ww-ray zoo list CONFIG [--format table|csv|json]
    ww-ray zoo show SOURCE            # a path, pytorchcv:NAME or hf:ORG/NAME; no spectra computed
                                      # (hf: online reads safetensors headers only: nothing downloaded)
    ww-ray zoo kinds                  # registered zoo kinds and their options
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from ww_ray.config import load_config
from ww_ray.errors import EXIT_OK, ModelSkipped, WwRayError, report_error
from ww_ray.zoos.spec import SKIP_REASON, ModelSpec

LIST_COLUMNS = ("source", "model_id", "revision", "architecture", "dataset", "task", "params", "top1_error",
                "top5_error", "reported_measure", "reported_value", "figures", "repo_kind", "base_model", "size_bytes",
                "file", "url", "status", "reason")


def register(subparsers: Any) -> None:
    zoo = subparsers.add_parser("zoo", help="list the models a config selects; show a model's layers")
    sub = zoo.add_subparsers(dest="zoo_command", required=True)
    listing = sub.add_parser("list", help="list the models a sweep config selects, with their reported figures")
    listing.add_argument("config", help="YAML sweep config")
    listing.add_argument("--format", choices=("table", "csv", "json"), default="table")
    listing.set_defaults(func=cmd_list)
    show = sub.add_parser("show", help="show one model's layers and shapes (nothing is computed)")
    show.add_argument("source", help="checkpoint path, Hugging Face folder, pytorchcv:NAME or hf:ORG/NAME[@REV]")
    show.add_argument("--allow-pickle", action="store_true", help="read pytorch_model.bin (weights-only) in folders")
    show.add_argument("--download", action="store_true",
                      help="fetch the weights even where the zoo can tell the layers from file headers alone (Hub)")
    show.set_defaults(func=cmd_show)
    kinds = sub.add_parser("kinds", help="list the registered zoo kinds and their options")
    kinds.set_defaults(func=cmd_kinds)


def spec_record(spec: ModelSpec) -> dict[str, Any]:
    """One listing row: the spec's columns plus its status (ready / skipped / unavailable) and reason."""
    row = spec.to_row()
    # the weight file a zoo reads and where it comes from: what to fetch by hand to work offline
    row["file"] = spec.extra.get("file_name") or (Path(spec.uri).name if spec.uri and "://" not in spec.uri else None)
    row["url"] = spec.uri if spec.uri and "://" in spec.uri else None
    # model-card / figures-CSV figures, each with what it measures: "glue/mrpc@validation:accuracy=0.86"
    row["figures"] = "; ".join(f"{f.target}={f.value:g}" for f in spec.reported_figures) or None
    if spec.extra.get(SKIP_REASON):
        row["status"], row["reason"] = "skipped", spec.extra[SKIP_REASON]
    elif spec.extra.get("load_error"):
        row["status"], row["reason"] = "unavailable", spec.extra["load_error"]
    else:
        row["status"], row["reason"] = "ready", None
    return {column: row.get(column) for column in LIST_COLUMNS}


def cmd_list(args: argparse.Namespace) -> int:
    from ww_ray.zoos.registry import enumerate_specs

    try:
        specs = enumerate_specs(load_config(args.config))
    except WwRayError as exc:
        return report_error("zoo list", exc)
    records = [spec_record(spec) for spec in specs]
    if args.format == "json":
        json.dump(records, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=LIST_COLUMNS)
        writer.writeheader()
        writer.writerows(records)
    else:
        print(format_table(records))
    return 0


def format_table(records: list[dict[str, Any]]) -> str:
    """Aligned text table: one model per line, revision shortened, figures with their measure."""
    columns = ("source", "model_id", "revision", "architecture", "dataset", "params", "top1_error", "top5_error",
               "reported", "figures", "kind", "file", "status")
    lines = []
    for r in records:
        reported = f"{r['reported_measure']}={r['reported_value']:g}" if r["reported_value"] is not None else ""
        lines.append({
            "source": r["source"], "model_id": r["model_id"], "revision": (r["revision"] or "")[:12],
            "architecture": r["architecture"] or "", "dataset": r["dataset"] or "",
            "params": f"{r['params']:,}" if r["params"] else "",
            "top1_error": "" if r["top1_error"] is None else f"{r['top1_error']:.2f}",
            "top5_error": "" if r["top5_error"] is None else f"{r['top5_error']:.2f}",
            "reported": reported,
            "figures": r["figures"] or "",
            "kind": r["repo_kind"] or "",
            "file": r["file"] or "",
            "status": r["status"] + (f": {r['reason']}" if r["reason"] else ""),
        })
    widths = {c: max([len(c)] + [len(str(line[c])) for line in lines]) for c in columns[:-1]}
    out = ["  ".join(c.ljust(widths[c]) for c in columns[:-1]) + "  status"]
    for line in lines:
        out.append("  ".join(str(line[c]).ljust(widths[c]) for c in columns[:-1]) + "  " + line["status"])
    out.append(f"{len(records)} model(s)")
    return "\n".join(out)


def cmd_show(args: argparse.Namespace) -> int:
    from ww_ray.zoos.registry import describe_layers, load_layer_weights, spec_from_uri
    from ww_ray.zoos.source import is_zoo_uri, open_source

    options = {"allow_pickle": True} if args.allow_pickle else {}
    try:
        described = None
        if is_zoo_uri(args.source):
            spec = spec_from_uri(args.source, **options)
            described = None if args.download else describe_layers(spec, **options)
            # --download reads the weights themselves: a hub model is fetched into the cache (download: true)
            fetch = {"download": True} if args.download else {}
            layers = described if described is not None else load_layer_weights(spec, **options, **fetch)
        else:
            spec, layers = open_source(args.source, **options)
        print(f"source        {spec.source}")
        print(f"model_id      {spec.model_id}")
        print(f"revision      {spec.revision or ''}")
        print(f"architecture  {spec.architecture or ''}")
        print(f"dataset       {spec.dataset or ''}")
        print(f"params        {spec.params if spec.params is not None else ''}")
        print(f"repo_kind     {spec.repo_kind or ''}")
        if spec.base_model:
            print(f"base_model    {spec.base_model}")
        for measure, value in spec.figures.items():
            print(f"{measure:<13} {value:g}")
        for figure in spec.reported_figures:
            print(f"figure        {figure.target} = {figure.value:g} ({figure.origin or ''})")
        print()
        print(f"{'index':>5}  {'kind':<10} {'groups':>6}  {'shape':<22} name")
        count = 0
        for layer in layers:
            shape = "x".join(str(s) for s in layer.shape)
            print(f"{layer.index:>5}  {layer.kind:<10} {layer.groups:>6}  {shape:<22} {layer.name}")
            count += 1
        print(f"{count} layer weight(s)" + (" (from the weight files' headers; nothing downloaded)" if described else ""))
    except ModelSkipped as exc:
        return report_error("zoo show", ModelSkipped(f"skipped: {exc.reason}"))
    except (WwRayError, TypeError) as exc:
        return report_error("zoo show", exc)
    return EXIT_OK


def cmd_kinds(args: argparse.Namespace) -> int:
    from ww_ray.zoos.registry import zoo_kinds

    for kind in zoo_kinds().values():
        scheme = f" (URIs {kind.uri_scheme}:...)" if kind.uri_scheme else ""
        print(f"{kind.name}{scheme}: {kind.description}  [{kind.module}]")
        options = ", ".join(f"{name}: {tag}" for name, tag in kind.options.items())
        print(f"    options: {options}" + (f"; required: {', '.join(kind.required)}" if kind.required else ""))
    return 0
