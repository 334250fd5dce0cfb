"""Analysis options and the two named presets, ``paper`` and ``ww`` (DESIGN.md §2).

``AnalysisOptions`` is a frozen, picklable dataclass: it travels to Ray actors as is. Every field
can be overridden on top of a preset::

    >>> from ww_ray.spectral.presets import resolve_options
    >>> opts = resolve_options("ww", randomize=True)
    >>> (opts.conv_method, opts.min_evals, opts.small_n_fit, opts.randomize)
    ('pooled', 8, True, True)
    >>> opts.label
    'ww+randomize=True'
"""
from __future__ import annotations

import ast
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

CONV_METHODS = ("slices", "stacked", "fft", "pooled")
FIT_KINDS = ("PL", "TPL")
GROUPED_MODES = ("blocks", "ww")
# Precision of the Gram GEMM X = WᵀW (the eigen-solve is float64 either way): ww_ray/spectral/esd.py.
GRAM_DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class AnalysisOptions:
    """Everything that changes the numbers of an analysis.

    Attributes:
        preset: name of the preset the options started from (recorded in every row).
        conv_method: how Conv1d/Conv2d weights become matrices: ``slices`` | ``stacked`` | ``fft`` | ``pooled``.
        conv_rescale: scale slice eigenvalues by rf/2 (``slices``) or 1/2 (``pooled``), as WeightWatcher does.
        grouped: grouped convolutions as their true block-diagonal operator (``blocks``) or as WeightWatcher's
            (out, in/groups) matrix (``ww``).
        fft_size: spatial size n of the (circular) input assumed by the ``fft`` method.
        min_evals: skip a matrix with fewer eigenvalues (M, or M·rf when pooled).
        max_evals: skip a matrix with more eigenvalues (None: no limit).
        max_n: skip a matrix whose larger side N exceeds this (None: no limit).
        evals_threshold: eigenvalues at or below this are left out of the power-law fit.
        fit: ``PL`` (power law) or ``TPL`` (truncated power law, through the ``powerlaw`` package).
        xmax: None, or ``"force"`` (fit with xmax = λmax through the ``powerlaw`` package).
        small_n_fit: use WeightWatcher 0.7.7's small-sample estimator below ``small_n_cutoff`` eigenvalues.
        small_n_cutoff: sample size below which the small-sample estimator is used.
        small_n_min_tail: smallest tail the small-sample estimator may choose.
        mp_fit: fit the Marchenko–Pastur bulk (cheap; on by default).
        randomize: compute the randomized control (one more eigen-decomposition per matrix).
        seed: seed of the randomized control's shuffles.
        skip_embeddings: leave embedding layers out of the analysis entirely (summaries always leave them out).
        device: ``auto`` (GPU when torch sees one), ``cpu`` or ``cuda``.
        gram_dtype: precision of the Gram GEMM, ``float64`` (every preset) or ``float32`` (opt-in: a
            float32 GEMM, still a float64 eigen-solve; λmax within 4e-7 and α, α̂, log α-norm, D, xmin
            within 6e-5 relative on the matrices benchmarks/gram_float32.py measures).
    """

    preset: str = "paper"
    conv_method: str = "slices"
    conv_rescale: bool = True
    grouped: str = "blocks"
    fft_size: int = 32
    min_evals: int = 50
    max_evals: int | None = None
    max_n: int | None = None
    evals_threshold: float = 1e-5
    fit: str = "PL"
    xmax: str | None = None
    small_n_fit: bool = False
    small_n_cutoff: int = 20
    small_n_min_tail: int = 8
    mp_fit: bool = True
    randomize: bool = False
    seed: int = 0
    skip_embeddings: bool = False
    device: str = "auto"
    gram_dtype: str = "float64"

    def __post_init__(self) -> None:
        problems = []
        if self.conv_method not in CONV_METHODS:
            problems.append(f"conv_method={self.conv_method!r} is not one of {CONV_METHODS}")
        if self.fit not in FIT_KINDS:
            problems.append(f"fit={self.fit!r} is not one of {FIT_KINDS}")
        if self.grouped not in GROUPED_MODES:
            problems.append(f"grouped={self.grouped!r} is not one of {GROUPED_MODES}")
        if self.xmax not in (None, "force"):
            problems.append(f"xmax={self.xmax!r} must be None or 'force'")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device={self.device!r} must be 'auto', 'cpu' or 'cuda'")
        if self.gram_dtype not in GRAM_DTYPES:
            problems.append(f"gram_dtype={self.gram_dtype!r} is not one of {GRAM_DTYPES}")
        if self.min_evals < 0 or self.fft_size < 1 or self.small_n_min_tail < 2:
            problems.append("min_evals must be >= 0, fft_size >= 1 and small_n_min_tail >= 2")
        if problems:
            raise ValueError("invalid analysis options: " + "; ".join(problems))

    @property
    def label(self) -> str:
        """The preset name, plus every option that differs from it (``paper+conv_method=fft``).

        Rows record it in their ``preset`` column and resume compares it, so a sweep with other
        options never takes rows computed with different ones for work already done. ``device``
        is left out: it does not change the numbers.
        """
        base = PRESETS.get(self.preset)
        if base is None:
            return self.preset
        changed = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                   if f.name not in ("preset", "device") and getattr(self, f.name) != getattr(base, f.name)]
        return "+".join([self.preset, ",".join(changed)]) if changed else self.preset

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, AnalysisOptions] = {
    # Martin, Peng & Mahoney 2021: conv slices rescaled by k/sqrt(2), matrices with M < 50 skipped.
    "paper": AnalysisOptions(preset="paper"),
    # WeightWatcher 0.7.7 analyze() defaults: pooled conv ESDs (x 1/2), M*rf in [8, 15000], N <= 50000,
    # small-N estimator under 20 eigenvalues, grouped convs as (out, in/groups) matrices.
    "ww": AnalysisOptions(
        preset="ww",
        conv_method="pooled",
        grouped="ww",
        min_evals=8,
        max_evals=15000,
        max_n=50000,
        small_n_fit=True,
    ),
}


def resolve_options(preset: str = "paper", **overrides: Any) -> AnalysisOptions:
    """Start from a named preset and apply overrides; unknown option names raise ``ValueError``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    known = {f.name for f in fields(AnalysisOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown analysis option(s) {unknown}; known options: {sorted(known - {'preset'})}")
    return replace(PRESETS[preset], **overrides)


def options_from_label(label: str) -> AnalysisOptions:
    """The options an ``AnalysisOptions.label`` stands for (the inverse of ``label``).

    >>> options_from_label("paper+conv_method=fft,fft_size=8").fft_size
    8
    """
    preset, _, changed = label.partition("+")
    overrides: dict[str, Any] = {}
    for pair in filter(None, changed.split(",")):
        name, _, text = pair.partition("=")
        try:
            overrides[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[name] = text  # plain strings such as fft, TPL, force
    return resolve_options(preset, **overrides)
