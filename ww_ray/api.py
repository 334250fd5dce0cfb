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

``analyze`` shows a tqdm bar over the matrices on stderr when stderr is a terminal (``progress=True``
forces it, e.g. in a notebook; ``progress=False`` turns it off), and warns (``ExpensiveAnalysisWarning``)
before it starts a method that solves many eigenproblems per layer (``conv_method="fft"``). The bar
lives here, in the loop over batches: the math in ``ww_ray.spectral`` does no I/O.
"""
from __future__ import annotations

import math
import sys
import warnings
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from ww_ray.allocator import pin_mmap_threshold
from ww_ray.errors import ModelSkipped
from ww_ray.spectral.matrices import SpectralInput
from ww_ray.spectral.metrics import compute_rows
from ww_ray.spectral.prepare import prepare_inputs
from ww_ray.spectral.presets import AnalysisOptions, resolve_options
from ww_ray.spectral.summary import summarize
from ww_ray.store.schema import LAYERS_SCHEMA
from ww_ray.weights import LayerWeight

__all__ = ["analyze", "summarize", "analyze_weights", "ExpensiveAnalysisWarning", "expensive_method_note"]

# Matrices held before they are decomposed: bounds memory on large models while still letting
# same-shape matrices of neighbouring layers share one batched eigen-solve.
_FLUSH_BYTES = 256 << 20

_SPEC_COLUMNS = ("source", "model_id", "revision", "architecture", "dataset")


class ExpensiveAnalysisWarning(UserWarning):
    """``analyze`` was asked for a method that solves many eigenproblems per layer (it may take minutes)."""


def expensive_method_note(options: AnalysisOptions) -> str | None:
    """What makes ``options`` slow, said before the work starts; None when nothing is unusually slow.

    >>> from ww_ray.spectral.presets import resolve_options
    >>> print(expensive_method_note(resolve_options("paper", conv_method="fft")))  # doctest: +NORMALIZE_WHITESPACE
    conv_method='fft' solves 544 complex eigenproblems per Conv2d layer (fft_size=32: 32×17 frequencies, times
    the groups) and 17 per Conv1d layer; this can take minutes per model on a CPU
    >>> expensive_method_note(resolve_options("paper")) is None
    True
    """
    if options.conv_method != "fft":
        return None
    n = options.fft_size
    half = n // 2 + 1
    note = (f"conv_method='fft' solves {n * half} complex eigenproblems per Conv2d layer (fft_size={n}: "
            f"{n}×{half} frequencies, times the groups) and {half} per Conv1d layer")
    if options.randomize:
        note += ", twice with randomize=True (the randomized control)"
    return note + "; this can take minutes per model on a CPU"


def _prepared_bytes(weight: LayerWeight) -> int:
    """About what ``weight``'s prepared matrices will take: its elements at float32 (more for float64)."""
    itemsize = getattr(getattr(weight.tensor, "dtype", None), "itemsize", 4)
    return math.prod(weight.shape) * max(4, int(itemsize))


def _batches(weights: Iterable[LayerWeight], options: AnalysisOptions,
             each_layer: bool = False) -> Iterator[list[SpectralInput]]:
    """Prepared rows in batches of at most ``_FLUSH_BYTES`` (a larger layer is a batch of its own).

    A batch is cut *before* the layer that would take it past the bound is prepared, so that the
    layer's float32 matrices never sit beside a full batch while it is solved.
    """
    pending: list[SpectralInput] = []
    pending_bytes = 0
    for weight in weights:
        if pending and pending_bytes + _prepared_bytes(weight) > _FLUSH_BYTES:
            yield pending
            pending, pending_bytes = [], 0
        items = prepare_inputs([weight], options)
        pending.extend(items)
        pending_bytes += sum(item.nbytes for item in items)
        if each_layer:
            yield pending
            pending, pending_bytes = [], 0
    if pending:
        yield pending


def analyze_weights(weights: Iterable[LayerWeight], options: AnalysisOptions, device: str = "auto",
                    threads: int | None = None,
                    on_rows: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Rows for a stream of layer weights, computed in memory-bounded batches (``threads``: CPU cores).

    ``on_rows`` (a progress bar) is called with the rows of every batch as it is done; with it, every
    layer is its own batch, so that the calls come layer by layer (a conv layer's slices still share
    one batched eigen-solve).
    """
    pin_mmap_threshold()  # freed matrices back to the OS (ww_ray.allocator)
    rows: list[dict[str, Any]] = []
    for batch in _batches(weights, options, each_layer=on_rows is not None):
        done = compute_rows(batch, options, device=device, threads=threads)
        rows.extend(done)
        if on_rows is not None:
            on_rows(done)
    return rows


def _progress_bar(enabled: bool | None, label: str) -> Any:
    """A tqdm bar over matrices on stderr; None when off (``enabled`` None: on when stderr is a terminal)."""
    if enabled is None:
        enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit="matrix", desc=f"ww_ray.analyze {label}", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5)


def _label(source: Any) -> str:
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        text = str(source)
        return text if len(text) <= 40 else "…" + text[-39:]
    return type(source).__name__


def _failed_source_frame(source: Any, options: AnalysisOptions, error: str, status: str = "failed") -> pd.DataFrame:
    row = {name: None for name in LAYERS_SCHEMA.names}
    row.update(model_id=str(source) if isinstance(source, str) else type(source).__name__,
               status=status, error=error, preset=options.label)
    return pd.DataFrame([row], columns=LAYERS_SCHEMA.names)


def analyze(source: Any, preset: str = "paper", *, progress: bool | None = None, base_model: Any = None,
            adapter: Any = None, **options: Any) -> pd.DataFrame:
    """Analyse every layer weight matrix of ``source``: one row per analysed matrix.

    Args:
        source: a ``torch.nn.Module``, a state dict, a path (``.safetensors``, ``.gguf`` (dequantized),
            ``.pt/.pth/.th/.bin`` loaded with ``weights_only=True``, a Hugging Face model folder) or a zoo URI such as
            ``pytorchcv:resnet20_cifar10`` or ``hf:openai-community/gpt2``.
        preset: ``paper`` (Martin, Peng & Mahoney 2021) or ``ww`` (WeightWatcher 0.7.7 defaults).
        progress: a tqdm bar over matrices on stderr; None (default): only when stderr is a terminal.
        base_model: the base ``source`` was made from (any source kind). For a LoRA adapter folder
            (``adapter_config.json``; ``"auto"``: its ``base_model_name_or_path``): the base's rows
            (``weight_role`` ``base``) and the merged W₀ + ΔW (``merged``) beside the deltas
            (``adapter_delta``). For a fine-tune: the base's rows and ΔW = W − W_base
            (``delta_vs_base``) beside its own (``weight``); ``ww_ray.analysis.shifts`` compares them.
        adapter: a LoRA adapter folder to analyse on top of ``source`` (the base): the same as
            ``analyze(adapter, base_model=source)``.
        **options: overrides of ``AnalysisOptions`` fields (``conv_method="fft"``, ``randomize=True``...);
            ``zoo_options={...}`` is passed to the zoo behind a URI (e.g. ``{"root": "/weights"}``).

    Returns:
        A DataFrame with the ``layers`` table columns (DESIGN.md §3), in layer order. Rows of
        matrices that were not analysed have ``status`` ``skipped`` or ``failed`` and an ``error``.
        A source left out on purpose (a GPTQ/AWQ/bitsandbytes checkpoint: the format is named) gives a
        single ``skipped`` row; one that cannot be read at all a single ``failed`` row; nothing is raised for
        bad data. Invalid options (unknown preset or option name) raise ``ValueError``.

    Warns:
        ExpensiveAnalysisWarning: before the work starts, for ``conv_method="fft"`` (how many
            eigenproblems each conv layer costs).
    """
    from ww_ray.zoos.source import open_source  # zoos import torch: keep `import ww_ray` light

    zoo_options = options.pop("zoo_options", None) or {}
    resolved = resolve_options(preset, **options)
    note = expensive_method_note(resolved)
    if note is not None:
        warnings.warn(note, ExpensiveAnalysisWarning, stacklevel=2)
    bar = None
    try:
        spec, weights = open_source(source, base_model=base_model, adapter=adapter, **zoo_options)
        bar = _progress_bar(progress, _label(source))
        rows = analyze_weights(weights, resolved,
                               on_rows=None if bar is None else (lambda done: bar.update(len(done))))
    except ModelSkipped as exc:  # left out on purpose (a quantized checkpoint ...): a skipped row
        return _failed_source_frame(source, resolved, exc.reason, status="skipped")
    except Exception as exc:  # unreadable/unsafe/unreachable source: a failed row, never a crash
        return _failed_source_frame(source, resolved, f"{type(exc).__name__}: {exc}")
    finally:
        if bar is not None:
            bar.close()
    frame = pd.DataFrame(rows)
    spec_row = spec.to_row()
    for column in _SPEC_COLUMNS:
        frame[column] = spec_row.get(column)
    frame["run_id"] = None
    return frame.reindex(columns=LAYERS_SCHEMA.names).reset_index(drop=True)
