"""Ray job entrypoint for a nightly rescan: the same as ``ww-ray rescan``, for ``ray job submit``.

    ray job submit --working-dir . -- python jobs/nightly_rescan.py --config configs/nightly-rescan.yaml
    ray job submit --working-dir . -- python jobs/nightly_rescan.py --config configs/nightly-rescan.yaml \\
        --out s3://bucket/ww --report /tmp/rescan.md

Inside a Ray job ``RAY_ADDRESS`` is set, so the driver joins the job's cluster; run directly, it
starts a local Ray. The exit status is ``ww-ray rescan``'s (0 ok, 1 a zoo could not be listed,
2 bad config or cluster, 130 interrupted), so a scheduler sees a failed night.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import ww_ray  # noqa: F401
except ImportError:  # running from an uploaded working dir where ww_ray is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ww_ray.rescan.cli import add_rescan_arguments, cmd_rescan  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/nightly_rescan.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML rescan config (see configs/nightly-rescan.yaml)")
    add_rescan_arguments(parser)
    return cmd_rescan(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
