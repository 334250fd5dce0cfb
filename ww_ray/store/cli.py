"""``ww-ray store``: maintenance of a dataset root.

    ww-ray store vacuum ROOT [--older-than 1h] [--dry-run]   # stale temp files and orphan layers files
"""
from __future__ import annotations

import argparse
from typing import Any

import pyarrow.fs as pafs

from ww_ray.errors import EXIT_OK, ConfigError, WwRayError, report_error
from ww_ray.validate import parse_duration
from ww_ray.store.root import resolve_root
from ww_ray.store.vacuum import DEFAULT_OLDER_THAN_S, vacuum


def register(subparsers: Any) -> None:
    store = subparsers.add_parser("store", help="maintain a dataset root")
    sub = store.add_subparsers(dest="store_command", required=True)
    clean = sub.add_parser(
        "vacuum", help="delete what killed writers left: hidden temp files and orphan layers files",
        description="Delete hidden temp files and layers files without a models row, when older than "
                    "--older-than (keep it above the longest commit of any sweep running at the same time). "
                    "Committed files that readers see are never touched.")
    clean.add_argument("root", help="dataset root: a folder or a pyarrow URI (s3://bucket/prefix, ...)")
    clean.add_argument("--older-than", default=f"{int(DEFAULT_OLDER_THAN_S)}s",
                       help="minimum age of a file to delete, e.g. 90s, 30m, 4h, 7d (default: 1h)")
    clean.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    clean.set_defaults(func=cmd_vacuum)


def cmd_vacuum(args: argparse.Namespace) -> int:
    try:
        older_than_s = parse_duration(args.older_than, "--older-than")
        root = resolve_root(args.root)
    except (WwRayError, ValueError) as exc:
        return report_error("store vacuum", exc)
    if root.filesystem.get_file_info(root.path).type != pafs.FileType.Directory:
        return report_error("store vacuum", ConfigError(f"no dataset root at {args.root}"))
    report = vacuum(root, older_than_s=older_than_s, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for path in report.temp_files:
        print(f"{verb} temp file {path}")
    for path in report.orphan_layers_files:
        print(f"{verb} orphan layers file {path}")
    count = len(report.temp_files) + len(report.orphan_layers_files)
    print(f"{verb} {count} file(s), {report.bytes / 1e6:.2f} MB; {report.kept_too_young} younger than "
          f"{args.older_than} kept")
    return EXIT_OK
