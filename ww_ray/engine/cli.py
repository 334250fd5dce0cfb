"""``ww-ray sweep CONFIG.yaml``: run a sweep on a local Ray (the default) or on a cluster.

    ww-ray sweep configs/quickstart.yaml                      # starts a local Ray, writes to the config's out:
    ww-ray sweep configs/hf-gpt.yaml --address auto --out s3://bucket/ww
    ww-ray sweep configs/local-example.yaml --no-resume       # analyse everything again
    ww-ray sweep configs/quickstart.yaml --preset ww --conv-method stacked   # override the config's analysis

While Ray and the workers start, one line per step goes to stderr ("starting local Ray…",
"workers ready in N s"); the progress bar follows (--no-progress: neither). The summary at the end
lists every model not analysed and prints each distinct error message once, in full.

Exit status: 0 when the run completed and analysed at least one model (failed models are data, listed
in the summary), 1 when it completed but a zoo could not be listed, 2 for a bad config or an unusable
cluster, 3 when it ran but analysed no model (every planned model failed or was skipped, e.g. the
quickstart without network: the summary says which weight files to put where), 130 when interrupted
(run the same command again to finish: resume skips what was committed; after --no-resume, run it
without --no-resume). The codes are ``ww_ray.errors``'s, shared by every command. A bad ``--run-id``
is refused before any work starts.
"""
from __future__ import annotations

import argparse
from typing import Any

from ww_ray.errors import (EXIT_ALL_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_ZOO_ERRORS, ConfigError, WwRayError,
                           report_error)
from ww_ray.spectral.presets import CONV_METHODS, PRESETS


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ww-ray sweep`` (shared with ``jobs/sweep.py``)."""
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join ('auto', 'ray://head:10001'); default: the config's ray.address, "
                             "else RAY_ADDRESS, else start a local Ray")
    parser.add_argument("--out", default=None, help="dataset root (folder or URI); default: the config's out:")
    parser.add_argument("--no-resume", action="store_true",
                        help="analyse every model again, even those the dataset already holds")
    parser.add_argument("--workers", type=int, default=None, help="number of spectral workers (overrides ray.workers)")
    parser.add_argument("--max-models-in-flight", type=int, default=None,
                        help="models loaded and analysed at once (overrides ray.max_models_in_flight)")
    parser.add_argument("--run-id", default=None,
                        help="id of this run, 1-200 characters from [A-Za-z0-9._-] (default: a fresh time-ordered id)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="analysis preset (overrides the config's preset:; the config's option overrides stay)")
    parser.add_argument("--conv-method", choices=CONV_METHODS, default=None,
                        help="how conv weights become matrices (overrides the config's conv_method)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: Any) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="analyse every model a config selects, on Ray, into a Parquet dataset",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    sweep.add_argument("config", help="YAML sweep config (see configs/)")
    add_sweep_arguments(sweep)
    sweep.set_defaults(func=cmd_sweep)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name in ("workers", "max_models_in_flight"):
        value = getattr(args, name, None)
        if value is not None:
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
            overrides[name] = value
    return overrides


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run ``ww-ray sweep``; prints the summary table; returns the exit status."""
    from ww_ray.config import load_config
    from ww_ray.engine.progress import format_summary
    from ww_ray.engine.sweep import run_config
    from ww_ray.store.paths import check_run_id

    try:
        config = load_config(args.config)
        if args.preset is not None or args.conv_method is not None:
            conv = {"conv_method": args.conv_method} if args.conv_method is not None else {}
            config = config.with_analysis(args.preset, **conv)
        overrides = _overrides(args)
        if args.run_id is not None:
            check_run_id(args.run_id)
    except (WwRayError, ValueError) as exc:
        return report_error("sweep", exc)
    try:
        result = run_config(config, out=args.out, address=args.address, resume=not args.no_resume,
                            progress=not args.no_progress, ray_overrides=overrides,
                            run_id=args.run_id)
    except (WwRayError, ValueError) as exc:
        return report_error("sweep", exc)
    except KeyboardInterrupt:  # before any model started (listing the zoos, starting Ray): nothing was written
        return report_error("sweep", KeyboardInterrupt("interrupted before the run started; nothing was written"))
    print(format_summary(result, resume=not args.no_resume))
    return sweep_exit_status(result)


def sweep_exit_status(result: Any) -> int:
    """The exit status of a finished sweep (``SweepResult``): see the module docstring."""
    counts = result.counts
    if result.interrupted:
        return EXIT_INTERRUPTED
    if result.planned and not counts.get("ok") and counts.get("failed"):
        return EXIT_ALL_FAILED
    return EXIT_ZOO_ERRORS if result.zoo_errors else EXIT_OK
