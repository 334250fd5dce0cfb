"""``ww-ray store``: maintenance of a dataset root.

    ww-ray store compact ROOT [--retain 10m]                 # one file per partition: reads stay fast
    ww-ray store vacuum ROOT [--older-than 1h] [--dry-run]   # stale temp files and orphan layers files
"""
from __future__ import annotations

import argparse
from typing import Any

import pyarrow.fs as pafs

from ww_ray.errors import EXIT_OK, ConfigError, WwRayError, report_error
from ww_ray.validate import parse_duration
from ww_ray.store.compact import DEFAULT_RETAIN_S, compact
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
    pack = sub.add_parser(
        "compact", help="rewrite the small files of layers and models into one file per partition",
        description="Rewrite every partition of layers and models that holds two or more files into one "
                    "sorted file (every row of every run kept). Atomic: readers see the old files or the new "
                    "ones, never both; a killed compaction leaves the root reading as before and a rerun "
                    "finishes it. Replaced files are deleted once older than --retain. Sweeps compact at their end.")
    pack.add_argument("root", help="dataset root: a folder or a pyarrow URI (s3://bucket/prefix, ...)")
    pack.add_argument("--retain", default=f"{int(DEFAULT_RETAIN_S)}s",
                      help="keep replaced files this long for readers still reading them, e.g. 0s, 10m (default: 10m)")
    pack.set_defaults(func=cmd_compact)


def cmd_compact(args: argparse.Namespace) -> int:
    try:
        retain_s = parse_duration(args.retain, "--retain")
        root = resolve_root(args.root)
    except (ConfigError, ValueError) as exc:
        print(f"ww-ray store compact: {exc}")
        return 2
    if root.filesystem.get_file_info(root.path).type != pafs.FileType.Directory:
        print(f"ww-ray store compact: no dataset root at {args.root}")
        return 2
    try:
        report = compact(root, retain_s=retain_s)
    except RuntimeError as exc:
        print(f"ww-ray store compact: {exc}")
        return 2
    print(f"compacted {report.files_in} file(s) into {report.files_out} ({report.rows} rows); "
          f"deleted {len(report.deleted)} replaced file(s) older than {args.retain}")
    return 0


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
    for path in report.compacted_away:
        print(f"{verb} compacted-away file {path}")
    count = len(report.temp_files) + len(report.orphan_layers_files) + len(report.compacted_away)
    print(f"{verb} {count} file(s), {report.bytes / 1e6:.2f} MB; {report.kept_too_young} younger than "
          f"{args.older_than} kept")
    return EXIT_OK
