"""``ww-ray rescan CONFIG.yaml``: analyse the Hub models that are new since the last rescan.

    ww-ray rescan configs/nightly-rescan.yaml                          # local Ray, the config's out:
    ww-ray rescan configs/nightly-rescan.yaml --address auto --out s3://bucket/ww
    ww-ray rescan configs/nightly-rescan.yaml --dry-run                # list and select, analyse nothing

Exit status: 0 when the rescan completed, 1 when it completed but a zoo could not be listed (that
zoo keeps its watermark), 3 when it analysed models but none ended ``ok`` (every one failed: look
at the summary's errors), 2 for a bad config, an offline Hub or an unusable cluster, 130 when
interrupted (run it again: models already committed are skipped, the watermark did not move).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ww_ray.errors import EXIT_ALL_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_ZOO_ERRORS, WwRayError, report_error


def add_rescan_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ww-ray rescan`` (shared with ``jobs/nightly_rescan.py``)."""
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join ('auto', 'ray://head:10001'); default: the config's ray.address, "
                             "else RAY_ADDRESS, else start a local Ray")
    parser.add_argument("--out", default=None, help="dataset root (folder or URI); default: the config's out:")
    parser.add_argument("--max-models", type=int, default=None, help="models analysed at most (rescan.max_models)")
    parser.add_argument("--time-budget", default=None,
                        help="no new batch starts after this long, e.g. 4h or 90m (rescan.time_budget)")
    parser.add_argument("--dry-run", action="store_true", help="list and select only; analyse and write nothing")
    parser.add_argument("--report", default=None,
                        help="also write the report to this file (.md: Markdown, .json: JSON, else text)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: Any) -> None:
    rescan = subparsers.add_parser(
        "rescan", help="analyse Hugging Face Hub models that are new since the last rescan (nightly jobs)",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    rescan.add_argument("config", help="YAML rescan config (see configs/nightly-rescan.yaml)")
    add_rescan_arguments(rescan)
    rescan.set_defaults(func=cmd_rescan)


def cmd_rescan(args: argparse.Namespace, client: Any | None = None) -> int:
    """Run ``ww-ray rescan``; prints the report; returns the exit status."""
    from ww_ray.rescan.run import run_rescan
    from ww_ray.rescan.settings import load_rescan_config

    try:
        config = load_rescan_config(args.config).with_overrides(
            out=args.out, address=args.address, max_models=args.max_models, time_budget_s=args.time_budget)
    except WwRayError as exc:
        return report_error("rescan", exc)
    try:
        result = run_rescan(config, client=client, progress=not args.no_progress, dry_run=args.dry_run)
    except (WwRayError, ValueError) as exc:
        return report_error("rescan", exc)
    except KeyboardInterrupt:
        return report_error("rescan", KeyboardInterrupt(
            "interrupted; models already committed stay (and are skipped next time), no watermark moved"))
    print(result.summary())
    if args.report:
        _write_report(Path(args.report), result)
    return rescan_exit_status(result)


def rescan_exit_status(result: Any) -> int:
    """The exit status of a finished rescan (``RescanResult``): see the module docstring."""
    if result.status == "interrupted":
        return EXIT_INTERRUPTED
    statuses = [r.status for batch in result.batches for r in batch.results]
    if statuses and "ok" not in statuses and "failed" in statuses:
        return EXIT_ALL_FAILED
    return EXIT_ZOO_ERRORS if result.zoo_errors else EXIT_OK


def _write_report(path: Path, result) -> None:
    if path.suffix == ".json":
        text = json.dumps(result.report, indent=2, default=str) + "\n"
    else:
        text = result.summary(markdown=path.suffix == ".md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
