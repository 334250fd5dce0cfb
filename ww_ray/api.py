"""The public Python API: ``analyze`` one model into per-matrix rows, ``summarize`` them per model.

    >>> import torch, ww_ray
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(300, 200), torch.nn.ReLU(), torch.nn.Linear(200, 100))
    >>> layers = ww_ray.analyze(model)                      # preset="paper"
    >>> layers[["layer_name", "N", "M", "status"]].values.tolist()
    [['0', 300, 200, 'ok'], ['2', 200, 100, 'ok']]
    >>> summary = ww_ray.summarize(layers)
    >>> summary["num_layers"], bool(abs(summary["log_norm"] - layers["log_norm"].mean()) < 1e-12)
    (2, True)
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import pandas as pd

from ww_ray.spectral.matrices import SpectralInput
from ww_ray.spectral.metrics import compute_rows
from ww_ray.spectral.prepare import prepare_inputs
from ww_ray.spectral.presets import AnalysisOptions, resolve_options
from ww_ray.spectral.summary import summarize
from ww_ray.store.schema import LAYERS_SCHEMA
from ww_ray.weights import LayerWeight

__all__ = ["analyze", "summarize", "analyze_weights"]

# Matrices held before they are decomposed: bounds memory on large models while still letting
# same-shape matrices of neighbouring layers share one batched eigen-solve.
_FLUSH_BYTES = 256 << 20

_SPEC_COLUMNS = ("source", "model_id", "revision", "architecture", "dataset")


def _batches(weights: Iterable[LayerWeight], options: AnalysisOptions) -> Iterator[list[SpectralInput]]:
    pending: list[SpectralInput] = []
    pending_bytes = 0
    for weight in weights:
        items = prepare_inputs([weight], options)
        pending.extend(items)
        pending_bytes += sum(item.nbytes for item in items)
        if pending_bytes >= _FLUSH_BYTES:
            yield pending
            pending, pending_bytes = [], 0
    if pending:
        yield pending


def analyze_weights(weights: Iterable[LayerWeight], options: AnalysisOptions, device: str = "auto",
                    threads: int | None = None) -> list[dict[str, Any]]:
    """Rows for a stream of layer weights, computed in memory-bounded batches (``threads``: CPU cores)."""
    rows: list[dict[str, Any]] = []
    for batch in _batches(weights, options):
        rows.extend(compute_rows(batch, options, device=device, threads=threads))
    return rows


def _failed_source_frame(source: Any, options: AnalysisOptions, error: str) -> pd.DataFrame:
    row = {name: None for name in LAYERS_SCHEMA.names}
    row.update(model_id=str(source) if isinstance(source, str) else type(source).__name__,
               status="failed", error=error, preset=options.label)
    return pd.DataFrame([row], columns=LAYERS_SCHEMA.names)


def analyze(source: Any, preset: str = "paper", **options: Any) -> pd.DataFrame:
    """Analyse every layer weight matrix of ``source``: one row per analysed matrix.

    Args:
        source: a ``torch.nn.Module``, a state dict, a path (``.safetensors``, ``.pt/.pth/.th/.bin``
            loaded with ``weights_only=True``, a Hugging Face model folder) or a zoo URI such as
            ``pytorchcv:resnet20_cifar10`` or ``hf:openai-community/gpt2``.
        preset: ``paper`` (Martin, Peng & Mahoney 2021) or ``ww`` (WeightWatcher 0.7.7 defaults).
        **options: overrides of ``AnalysisOptions`` fields (``conv_method="fft"``, ``randomize=True``...);
            ``zoo_options={...}`` is passed to the zoo behind a URI (e.g. ``{"root": "/weights"}``).

    Returns:
        A DataFrame with the ``layers`` table columns (DESIGN.md §3), in layer order. Rows of
        matrices that were not analysed have ``status`` ``skipped`` or ``failed`` and an ``error``.
        A source that cannot be read at all gives a single ``failed`` row; nothing is raised for
        bad data. Invalid options (unknown preset or option name) raise ``ValueError``.
    """
    from ww_ray.zoos.source import open_source  # zoos import torch: keep `import ww_ray` light

    zoo_options = options.pop("zoo_options", None) or {}
    resolved = resolve_options(preset, **options)
    try:
        spec, weights = open_source(source, **zoo_options)
        rows = analyze_weights(weights, resolved)
    except Exception as exc:  # unreadable/unsafe/unreachable source: a failed row, never a crash
        return _failed_source_frame(source, resolved, f"{type(exc).__name__}: {exc}")
    frame = pd.DataFrame(rows)
    spec_row = spec.to_row()
    for column in _SPEC_COLUMNS:
        frame[column] = spec_row.get(column)
    frame["run_id"] = None
    return frame.reindex(columns=LAYERS_SCHEMA.names).reset_index(drop=True)
