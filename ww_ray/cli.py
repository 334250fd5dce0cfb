"""The ``ww-ray`` command line: one sub-command per stage, each defined next to its code.

Each entry of ``_COMMAND_MODULES`` is a module exposing ``register(subparsers)`` which adds its
sub-commands and sets ``func`` on the parsed namespace. Modules are imported only when the command
line is built, so ``ww-ray --help`` stays fast enough and a broken optional stage cannot hide the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence


def version() -> str:
    """The installed distribution's version (``importlib.metadata``); the package's own when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("ww_ray")
    except PackageNotFoundError:  # run from a source tree that was never pip-installed
        from ww_ray import __version__

        return __version__

_COMMAND_MODULES = [
    "ww_ray.spectral_cli",     # analyze
    "ww_ray.zoos.cli",         # zoo list / zoo show
    "ww_ray.engine.cli",       # sweep
    "ww_ray.rescan.cli",       # rescan
    "ww_ray.analysis.cli",     # regress, ingest, query, report
    "ww_ray.store.cli",        # store vacuum
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ww-ray",
        description="Heavy-tailed weight-spectrum metrics of pretrained models, at scale on Ray; "
                    "one sub-command per stage.",
        epilog="Start with `ww-ray sweep configs/local-example.yaml` (offline) or `ww-ray analyze FILE`; "
               "`ww-ray COMMAND --help` has each command's options and examples.")
    parser.add_argument("--version", action="version", version=f"ww-ray {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # a real missing dependency inside the module: say so
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
