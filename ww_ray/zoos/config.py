"""``ZooConfig``: one validated entry of a sweep config's ``zoos:`` list (``parse.py`` builds it).

Frozen and picklable: it travels to Ray tasks on the ``ModelSpec`` it selected (``spec.zoo``),
so a load task can rebuild the same zoo on another node.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class ZooConfig:
    """One entry of ``zoos:``: which zoo kind, which of its models, and kind-specific options.

    Attributes:
        kind: registered zoo kind (``local``, ``pytorchcv``, ``hub``).
        name: the ``source`` recorded for its models (default: chosen by the zoo).
        include, exclude: shell-style globs on model ids (include all when empty).
        datasets, architectures: keep models whose dataset / architecture series is listed
            (datasets compared after ``normalize_dataset``; architectures case-insensitively).
        params_min, params_max: keep models whose parameter count is in range (unknown counts kept).
        limit: keep at most this many models (after the other filters).
        max_size_bytes: models whose weights are larger are listed but skipped with a reason.
        metadata: CSV of reported figures (absolute path) that overrides or extends the zoo's own.
        options: kind-specific settings (``path``, ``root``, ``models``, ``author`` ...), validated
            against the zoo kind's declared options; path options are absolute.
    """

    kind: str
    name: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    params_min: int | None = None
    params_max: int | None = None
    limit: int | None = None
    max_size_bytes: int | None = None
    metadata: str | None = None
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (what a rescan watermark fingerprints)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("include", "exclude", "datasets", "architectures"):
            out[name] = list(out[name])
        out["options"] = dict(self.options)
        return out
