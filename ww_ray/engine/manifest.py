"""The run manifest (``runs/<run_id>.json``): what ran, with what, on what, and how it went.

It holds the resolved config and its hash, the analysis options, ww_ray's version and git sha, the
versions of the packages that shape the numbers, the cluster's resources and the worker pool, the
counts by status and the timings. The sweep writes it last, once every model is committed.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import subprocess
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import ww_ray
from ww_ray.spectral.metrics import ANALYZER_VERSION
from ww_ray.spectral.presets import AnalysisOptions

PACKAGES = ("ray", "numpy", "scipy", "torch", "pyarrow", "pandas", "safetensors", "huggingface_hub",
            "transformers", "pytorchcv", "powerlaw", "duckdb")


def plain(value: Any) -> Any:
    """Dataclasses, tuples and paths as JSON-friendly values."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_hash(config: Any) -> str | None:
    """SHA-256 of the canonical JSON of a resolved config (None when there is none)."""
    if config is None:
        return None
    text = json.dumps(plain(config), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_sha() -> str | None:
    """The commit of the ww_ray checkout in use (None when it is not a git checkout)."""
    folder = Path(ww_ray.__file__).resolve().parent
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and len(sha) == 40 else None


def manifest_header(*, kind: str, status: str, started_at: _dt.datetime, root: str, config: Any,
                    options: AnalysisOptions) -> dict[str, Any]:
    """What every run manifest of a sweep or rescan starts with: what ran, with what, on what code."""
    config_plain = plain(config) if config is not None else None
    return {
        "kind": kind,
        "status": status,
        "started_at": started_at.isoformat(),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "root": root,
        "config": config_plain,
        "config_hash": config_hash(config_plain),
        "preset": options.label,
        "analysis_options": options.as_dict(),
        "analyzer_version": ANALYZER_VERSION,
        "ww_ray_version": ww_ray.__version__,
        "git_sha": git_sha(),
        "packages": package_versions(),
    }


def build_manifest(*, run_id: str, status: str, started_at: _dt.datetime, seconds: float, root: str,
                   config: Any, options: AnalysisOptions, counts: dict[str, int], results: list[Any],
                   unfinished: list[tuple], cluster: dict[str, Any] | None, pool: dict[str, Any] | None,
                   zoo_errors: list[dict[str, Any]], seconds_startup: float = 0.0,
                   error: str | None = None) -> dict[str, Any]:
    """The manifest body (``write_manifest`` adds ``schema_version``)."""
    slowest = sorted(results, key=lambda r: -r.seconds_total)[:10]
    header = manifest_header(kind="sweep", status=status, started_at=started_at, root=root, config=config,
                             options=options)
    return {
        "run_id": run_id,
        **header,
        "error": error,
        "cluster": cluster,
        "pool": pool,
        "counts": counts,
        "timings": {
            "seconds": seconds,
            "seconds_startup": seconds_startup,
            "seconds_load": sum(r.seconds_load for r in results),
            "seconds_compute": sum(r.seconds_compute for r in results),
            "slowest": [{"source": r.source, "model_id": r.model_id, "seconds_total": r.seconds_total}
                        for r in slowest],
        },
        "failures": [{"source": r.source, "model_id": r.model_id, "revision": r.revision, "status": r.status,
                      "error": r.error, "attempts": r.attempts} for r in results if r.status != "ok"],
        "unfinished": [list(key) for key in unfinished],
        "zoo_errors": zoo_errors,
    }
