"""Sub-commands of the analysis stage: ``regress``, ``ingest``, ``query``, ``report``.

Each has a description and examples in ``ww-ray COMMAND --help`` (``_REGRESS``, ``_QUERY``,
``_REPORT`` below); errors are one ``error: ...`` line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.fs as pafs

from ww_ray.analysis import query as query_mod
from ww_ray.analysis.regression import DEFAULT_METRICS, GROUP_COLUMNS, TARGETS, read_exclude_file, regress, summary_table
from ww_ray.errors import EXIT_USAGE
from ww_ray.zoos.figures import FIGURE_TARGET_PREFIX, figure_direction
from ww_ray.store import new_run_id, read_table, resolve_root, write_manifest, write_regressions


_RAW = argparse.RawDescriptionHelpFormatter

_REGRESS = ("Fit reported error ~ metric (OLS) per series of models, as the paper's Table 3: one fit per\n"
            "(series, metric) with at least --min-models models that have a reported error figure. Prints\n"
            "the fits and the mean/std of R² and MSE per metric, and stores them in ROOT/regressions/.",
            """examples:
  ww-ray regress ww-results                              # default metrics, series = source, dataset, architecture
  ww-ray regress ww-results --metrics alpha_weighted log_norm --target top1_error
  ww-ray regress ww-results --by dataset,architecture --min-models 3 --no-write  # mix sources
  ww-ray regress ww-results --exclude outliers.txt       # model ids / globs to leave out, one per line
  ww-ray regress ww-results --target figure:glue/mrpc@validation:accuracy  # model-card figures

metrics are columns of the models table: per-model means over the analysed matrices (alpha, ...), or
the compound means (alpha_compound, ...: the mean of the per-layer means, so that a conv layer's
k×k slices count once).""")

_QUERY = ("SQL (DuckDB) over a dataset root. Views: layers (one row per matrix), models (the latest row per\n"
          "model), regressions, runs (one row per run); *_all views keep every run's rows.",
          """examples:
  ww-ray query ww-results "SELECT model_id, status, alpha, alpha_weighted FROM models ORDER BY alpha"
  ww-ray query ww-results "SELECT layer_name, avg(alpha) FROM layers WHERE status = 'ok' GROUP BY 1"
  ww-ray query ww-results --example failed_models
  ww-ray query ww-results --example runs                 # one readable line per run
  ww-ray query ww-results --list-examples
  ww-ray query ww-results "SELECT * FROM layers" --format parquet --out layers.parquet""")

_REPORT = ("PNG figures and one HTML page (index.html) for a dataset root: reported error vs each metric per\n"
           "series, correlation flow (alpha vs relative depth), alpha and spectral-norm histograms, one\n"
           "layer's ESD with its power-law fit, the regression tables, flags, and which runs and models\n"
           "went in (with their errors).",
           """examples:
  ww-ray report ww-results                               # writes ww-results/report/index.html
  ww-ray report ww-results --out /tmp/report --models resnet20-12fca82f resnet56-4bfd9763
  ww-ray report ww-results --esd-model resnet20-12fca82f --esd-layer layer3.2.conv2
  ww-ray report s3://bucket/ww --min-models 3            # built locally, copied to s3://bucket/ww/report""")


def _split(values: list[str] | None) -> list[str]:
    return [v for item in values or [] for v in item.split(",") if v.strip()]


def _existing_root(text: str):
    root = resolve_root(text)
    if root.filesystem.get_file_info(root.path).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"no dataset root at {text} (expected a folder with models/, layers/ ...)")
    return root


def _print_frame(frame: pd.DataFrame, digits: int = 4) -> None:
    with pd.option_context("display.max_rows", 500, "display.max_columns", 30, "display.width", 200):
        print(frame.round(digits).to_string(index=False))


def _run(func):
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ValueError, KeyError, FileNotFoundError, FileExistsError, duckdb.Error) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"error: {message}", file=sys.stderr)
            return EXIT_USAGE
    return wrapper


@_run
def cmd_regress(args: argparse.Namespace) -> int:
    root = _existing_root(args.root)
    exclude = read_exclude_file(Path(args.exclude).read_text(encoding="utf-8")) if args.exclude else []
    by = _split([args.by])
    metrics = _split(args.metrics) or list(DEFAULT_METRICS)
    models = read_table(root, "models")
    fits = regress(models, metrics=metrics, target=args.target, min_models=args.min_models, exclude=exclude, by=by,
                   allow_mixed=args.allow_mixed_analyzers)
    if fits.empty:
        print(f"no (series, metric) with at least {args.min_models} ok models and an error figure "
              f"({len(models)} models in {root}); nothing written", file=sys.stderr)
        return 1
    columns = [c for c in GROUP_COLUMNS if c in by] + ["metric", "target", "n", "slope", "intercept", "r2", "mse",
                                                          "rmse", "kendall_tau", "kendall_p", "slope_p"]
    _print_frame(fits[columns])
    for target in sorted({t for t in fits["target"] if str(t).startswith(FIGURE_TARGET_PREFIX)}):
        higher = figure_direction(models.get("reported_figures", pd.Series(dtype=object)), target)
        way = {True: "higher is better: a metric that predicts quality has a negative slope",
               False: "lower is better, as an error", None: "direction unknown"}[higher]
        dataset, metric = target[len(FIGURE_TARGET_PREFIX):].rsplit(":", 1)
        print(f"target {target}: {metric} on {dataset}, as reported ({way})")
    print("\nSummary over series (mean and std of R² and MSE per metric):")
    _print_frame(summary_table(fits, positive_only=args.positive_only))
    if not args.no_write:
        run_id = new_run_id()
        started = _dt.datetime.now(_dt.timezone.utc)
        path = write_regressions(root, fits, run_id)
        write_manifest(root, run_id, {
            "kind": "regress", "started_at": started, "finished_at": _dt.datetime.now(_dt.timezone.utc),
            "options": {"metrics": metrics, "target": args.target, "min_models": args.min_models,
                        "exclude": exclude, "by": by, "allow_mixed_analyzers": args.allow_mixed_analyzers},
            "counts": {"regressions": len(fits), "series": int(fits.groupby(by).ngroups), "models_read": len(models)},
        })
        print(f"\nwrote {len(fits)} regressions to {path} (run {run_id})")
    return 0


@_run
def cmd_ingest(args: argparse.Namespace) -> int:
    from ww_ray.analysis.ingest import ingest

    result = ingest(args.paths, args.reported or [], args.out, source=args.source,
                    analyzer_version=args.analyzer_version, preset=args.preset)
    print(f"ingested {result.models} models and {result.layers} layer rows into {result.root} (run {result.run_id}; "
          f"analyzer {', '.join(result.analyzer_versions)}); {result.with_error} have an error figure")
    if result.without_error:
        print(f"{len(result.without_error)} without a top-1/top-5 error (left out of error regressions): "
              + ", ".join(result.without_error[:20]) + (" ..." if len(result.without_error) > 20 else ""))
    if result.unmapped_columns:
        print("columns with no dataset equivalent, not ingested: " + ", ".join(result.unmapped_columns))
    for note in result.notes[:20]:
        print(f"note: {note}")
    if len(result.notes) > 20:
        print(f"... and {len(result.notes) - 20} more notes")
    return 0


@_run
def cmd_query(args: argparse.Namespace) -> int:
    if args.list_examples:
        for name, (description, sql) in query_mod.EXAMPLES.items():
            print(f"{name}: {description}\n    {sql}\n")
        return 0
    root = _existing_root(args.root)
    if args.example == "runs" and args.format == "table" and args.sql is None and args.out is None:
        sys.stdout.write(runs_text(read_table(root, "runs")))
        return 0
    relation = query_mod.query(root, query_mod.resolve_sql(args.sql, args.example))
    text = query_mod.write_result(relation, args.format, args.out)
    if text is not None:
        sys.stdout.write(text)
    else:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _json_dict(value: object) -> dict:
    import json

    if isinstance(value, dict):
        return value
    try:
        loaded = json.loads(value) if isinstance(value, str) else {}
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


_COUNT_ORDER = ("planned", "ok", "failed", "skipped", "already_done", "unfinished", "matrices")


def _count_order(name: str) -> tuple[int, str]:
    return (_COUNT_ORDER.index(name) if name in _COUNT_ORDER else len(_COUNT_ORDER), name)


def runs_text(runs: pd.DataFrame) -> str:
    """``--example runs`` as a table: one line per run with its kind, status, preset, time and counts
    (the nested manifest fields stay available with ``--format csv`` or in SQL)."""
    if runs.empty:
        return "(no runs)\n"
    rows = []
    for run in runs.sort_values("run_id").to_dict("records"):
        counts = _json_dict(run.get("counts"))
        timings = _json_dict(run.get("timings"))
        seconds = timings.get("seconds")
        rows.append({"run_id": run.get("run_id"), "kind": run.get("kind"), "status": run.get("status"),
                     "preset": run.get("preset") or "", "started_at": str(run.get("started_at") or "")[:19],
                     "seconds": f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "",
                     "counts": " ".join(f"{k}={counts[k]}" for k in sorted(counts, key=_count_order)
                                        if counts[k] not in (0, None))})
    frame = pd.DataFrame(rows).fillna("")
    with pd.option_context("display.max_colwidth", 120, "display.width", 250):
        return frame.to_string(index=False) + f"\n({len(frame)} runs; --format csv for every manifest field)\n"


@_run
def cmd_report(args: argparse.Namespace) -> int:
    from ww_ray.analysis.report import build_report

    root = _existing_root(args.root)
    report = build_report(root, args.out, models=_split(args.models) or None,
                          metrics=_split(args.metrics) or list(DEFAULT_METRICS), esd_model=args.esd_model,
                          esd_layer=args.esd_layer, esd_slice=args.esd_slice, min_models=args.min_models)
    where = report.uploaded_to or report.html_path
    print(f"wrote {where} ({len(report.images)} figures)" + ("" if report.uploaded_to else f"; open file://{report.html_path}"))
    for note in report.notes:
        print(f"note: {note}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("regress", help="OLS of reported error on model metrics per (source, dataset, architecture) series",
                              description=_REGRESS[0], epilog=_REGRESS[1], formatter_class=_RAW)
    p.add_argument("root", help="dataset root (folder or URI)")
    p.add_argument("--metrics", nargs="+", help=f"metrics to regress (default: {' '.join(DEFAULT_METRICS)})")
    p.add_argument("--target", default="auto", metavar="TARGET",
                   help=f"figure to regress: {', '.join(TARGETS)}, another error measure (wer ...), or "
                        "figure:DATASET[@SPLIT]:METRIC for model-card / figures-CSV figures (auto: top-1, else "
                        "top-5, else another error, else the figure most models of the series report)")
    p.add_argument("--min-models", type=int, default=4, help="smallest series regressed (default 4)")
    p.add_argument("--exclude", help="file of model ids / globs to leave out, one per line (# comments)")
    p.add_argument("--by", default="source,dataset,architecture", help="series columns (subset of source,dataset,architecture; "
                   "default: all three, so two sources of one architecture are two series)")
    p.add_argument("--allow-mixed-analyzers", action="store_true", help="fit a series even when its models' "
                   "analyzer versions define log_norm differently (WeightWatcher < 0.4 vs later / ww_ray)")
    p.add_argument("--positive-only", action="store_true", help="summary over fits with a positive slope only")
    p.add_argument("--no-write", action="store_true", help="print only; do not write the regressions table")
    p.set_defaults(func=cmd_regress)

    p = subparsers.add_parser("ingest", help="turn WeightWatcher results (get_details/get_summary files, summary "
                              "tables, folders of them; any release) into a dataset root")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a per-model summary CSV (one row per model), a get_details() CSV of one model (model id = "
                   "file stem; its get_summary() beside it as <stem>.txt or <stem>.json), a summary file, or a folder")
    p.add_argument("--reported", action="append", help="file of reported errors (README HTML, pytorchcv metainfo "
                   "CSV, or a CSV with model/top1_error/top5_error); repeat, earlier files win")
    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--source", help="source of the models (default: a summary CSV's stem; for per-model files "
                   "the name of their folder)")
    p.add_argument("--analyzer-version", help="what computed the metrics, e.g. weightwatcher-0.2.7 (default: the "
                   "release family the files' layout shows, e.g. weightwatcher-0.7.x); recorded on every row")
    p.add_argument("--preset", default="external", help="label recorded as the rows' preset")
    p.set_defaults(func=cmd_ingest)

    p = subparsers.add_parser("query", help="SQL (DuckDB) over the views layers, models, regressions, runs",
                              description=_QUERY[0], epilog=_QUERY[1], formatter_class=_RAW)
    p.add_argument("root", help="dataset root (folder or URI)")
    p.add_argument("sql", nargs="?", help="a SQL query; or use --example")
    p.add_argument("--example", help=f"run a documented example: {', '.join(query_mod.EXAMPLES)}")
    p.add_argument("--list-examples", action="store_true", help="print the example queries and exit")
    p.add_argument("--format", default="table", choices=query_mod.FORMATS,
                   help="table (default, aligned text), csv, or parquet (needs --out)")
    p.add_argument("--out", help="output file (required for parquet)")
    p.set_defaults(func=cmd_query)

    p = subparsers.add_parser("report", help="PNG plots and an HTML page of a dataset root",
                              description=_REPORT[0], epilog=_REPORT[1], formatter_class=_RAW)
    p.add_argument("root", help="dataset root (folder or URI)")
    p.add_argument("--out", help="output folder (default: ROOT/report)")
    p.add_argument("--models", nargs="+", help="models to compare in flow/histogram plots (default: shallowest "
                   "and deepest of each series)")
    p.add_argument("--metrics", nargs="+", help="metrics for the metric-vs-error plots")
    p.add_argument("--esd-model", help="model whose layer ESD is drawn (default: the first chosen model)")
    p.add_argument("--esd-layer", help="layer name for the ESD plot (default: the largest analysed matrix, or a "
                   "sliced layer's slices pooled, with at least 200 eigenvalues)")
    p.add_argument("--esd-slice", type=int, help="conv slice id for the ESD plot")
    p.add_argument("--min-models", type=int, default=4,
                   help="smallest series (models with a reported error) that gets a metric-vs-error plot and a "
                        "fit when ROOT holds no stored regressions (default 4, as ww-ray regress)")
    p.set_defaults(func=cmd_report)
