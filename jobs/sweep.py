"""Ray job entrypoint for a sweep: the same as ``ww-ray sweep``, for ``ray job submit``.

    ray job submit --working-dir . -- python jobs/sweep.py --config configs/quickstart.yaml
    ray job submit --working-dir . -- python jobs/sweep.py --config configs/hf-gpt.yaml --out s3://bucket/ww

Inside a Ray job ``RAY_ADDRESS`` is set, so the driver joins the job's cluster; run directly, it
starts a local Ray like ``ww-ray sweep``. The exit status is ``ww-ray sweep``'s.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import ww_ray  # noqa: F401
except ImportError:  # running from an uploaded working dir where ww_ray is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ww_ray.engine.cli import add_sweep_arguments, cmd_sweep  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/sweep.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML sweep config (see configs/)")
    add_sweep_arguments(parser)
    return cmd_sweep(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
