"""ww_ray: predict the quality of pretrained neural networks from their weight spectra, at scale on Ray.

``analyze(source, preset="paper", **options)`` gives one row per analysed weight matrix;
``summarize(rows)`` gives the model averages; ``open_dataset(root)`` opens a sweep's dataset as a
DuckDB connection with the views ``layers``, ``models``, ``regressions`` and ``runs``.
See README.md and DESIGN.md.
"""
from __future__ import annotations

__version__ = "0.1.0"

from ww_ray.api import analyze, summarize  # noqa: E402
from ww_ray.store import open_dataset  # noqa: E402

__all__ = ["analyze", "summarize", "open_dataset", "__version__"]
