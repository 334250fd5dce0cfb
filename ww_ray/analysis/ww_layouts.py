"""WeightWatcher's output layouts by release, and the one table from their names to ww_ray's.

WeightWatcher (``weightwatcher`` on PyPI) has written three layouts of ``get_details()`` over its
history, and two sets of ``get_summary()`` keys. ``DETAILS_NAMES`` maps each layout's columns to the
``layers`` columns of ``ww_ray/store/schema.py``, ``SUMMARY_NAMES`` maps summary keys (and the
columns of one-row-per-model summary tables) to ``models`` columns. Values are never converted:
a name is mapped only where the two quantities are defined the same way *within that release's own
conventions*, and the release is recorded (``analyzer_version``) because the conventions differ:

======================  ==============================================  ==================================
layout                  recognised by                                   conventions
======================  ==============================================  ==================================
``0.2`` (≤ 0.2.7)       ``level`` / ``lognorm`` / ``spectralnorm``      one ``LEVEL.SLICE`` row per matrix
                                                                        (each k×k slice of a conv) plus one
                                                                        ``LEVEL.LAYER`` row per layer that
                                                                        repeats the slices' mean: only the
                                                                        slices are rows. Every W is first
                                                                        scaled by √(count/2), count = the
                                                                        layer's number of matrices (k² for a
                                                                        conv, 1 for a dense layer: its
                                                                        eigenvalues are half ours).
                                                                        ``norm`` = ‖W‖_F, ``lognorm`` =
                                                                        log10 ‖W‖_F (not squared).
``0.4-0.6``             ``log_norm`` without ``status``                 one row per layer; conv slices pooled
                                                                        into one ESD; ``norm`` = ‖W‖_F²,
                                                                        ``log_norm`` = log10 ‖W‖_F²;
                                                                        ``warning`` holds the fit status
                                                                        (``success`` / ``failed``).
``0.7``                 ``log_norm`` and ``status``                     as 0.4–0.6, ``status`` holds the fit
                                                                        status, ``warning`` under-/over-trained.
======================  ==============================================  ==================================

``log_norm_meaning`` says which of the two ``log_norm`` definitions an ``analyzer_version`` string
uses (ww_ray's own rows use WeightWatcher ≥ 0.4's); the regression refuses to fit a series that
mixes the two (``ww_ray.analysis.regression``).

>>> detect_layout(["layer_id", "layer_type", "N", "M", "slice", "level", "lognorm"])
'0.2'
>>> layer_type_name("LAYER_TYPE.DENSE", "0.2"), layer_type_name("16", "0.4-0.6"), layer_type_name("conv2d", "0.7")
('linear', 'conv2d', 'conv2d')
>>> log_norm_meaning("weightwatcher-0.2.7"), log_norm_meaning("weightwatcher==0.7.7"), log_norm_meaning("external")
('log10 ||W||_F', 'log10 ||W||_F^2', None)
"""
from __future__ import annotations

import re
from typing import Sequence

#: The layouts, oldest first.
LAYOUTS = ("0.2", "0.4-0.6", "0.7")
#: The ``analyzer_version`` an ingest records when none is given: what the layout tells.
LAYOUT_VERSIONS = {"0.2": "weightwatcher-0.2.x", "0.4-0.6": "weightwatcher-0.4-0.6", "0.7": "weightwatcher-0.7.x"}

#: The two definitions of ``log_norm`` (and of ``norm``) WeightWatcher has used.
FROBENIUS = "log10 ||W||_F"          # WeightWatcher < 0.4: lognorm = log10 of the Frobenius norm
FROBENIUS_SQUARED = "log10 ||W||_F^2"  # WeightWatcher >= 0.4 and ww_ray: log10 of the sum of the eigenvalues

#: ``models`` columns whose meaning differs between the two conventions (the ``_compound`` variants too):
#: 0.2.x's log_norm is not squared and its dense-layer eigenvalues are halved (every W × √(count/2)).
CONVENTION_DEPENDENT = ("log_norm", "log_spectral_norm", "lambda_max", "alpha_weighted", "log_alpha_norm")

# layers column -> the columns that give it, first present wins.
_SHARED_LATER = {
    "layer_index": ("layer_id",),
    "layer_name": ("longname", "name"),
    "N": ("N",), "M": ("M",), "Q": ("Q",), "rf": ("rf",), "num_evals": ("num_evals",),
    "lambda_max": ("lambda_max", "spectral_norm"),
    "log_spectral_norm": ("log_spectral_norm",),
    "norm": ("norm",),
    "log_norm": ("log_norm",),
    "alpha": ("alpha",),
    "alpha_weighted": ("alpha_weighted",),
    "log_alpha_norm": ("log_alpha_norm",),
    "stable_rank": ("stable_rank",),
    "entropy": ("entropy",),
    "matrix_rank": ("matrix_rank",),
    "xmin": ("xmin",), "xmax": ("xmax",), "D": ("D",), "sigma": ("sigma",),
    "num_pl_spikes": ("num_pl_spikes",),
    "mp_softrank": ("mp_softrank",), "sigma_mp": ("sigma_mp",), "lambda_plus": ("bulk_max",),
    "num_spikes": ("num_spikes",), "rand_distance": ("rand_distance",),
}
#: Per layout: ``layers`` column -> the details columns that give it (first present wins).
DETAILS_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "0.2": {
        "layer_index": ("layer_id",),
        "N": ("N",), "M": ("M",), "Q": ("Q",),
        "lambda_max": ("spectralnorm", "spectral_norm"),  # the largest eigenvalue of the scaled W
        "log_spectral_norm": ("logspectralnorm",),
        "norm": ("norm",),          # ||W||_F of the scaled W (not squared)
        "log_norm": ("lognorm",),   # log10 ||W||_F (not squared)
        "alpha": ("alpha",),
        "alpha_weighted": ("alpha_weighted",),
        "log_alpha_norm": ("logpnorm",),
        "stable_rank": ("softrank",),  # ||W||_F^2 / sigma_max^2, our stable rank
        "D": ("D",),
        "sigma_mp": ("sigma_mp",),
        "num_spikes": ("numofSpikes",),
        "mp_softrank": ("softrank_mp",),  # MP bulk edge / lambda_max
    },
    "0.4-0.6": dict(_SHARED_LATER),
    "0.7": {**_SHARED_LATER, "warning": ("warning",)},
}
#: Columns a layout uses for structure (read, not metrics): never reported as unmapped.
STRUCTURE_COLUMNS = {
    "0.2": ("layer_type", "slice", "slice_count", "level", "comment", "layer_count"),
    "0.4-0.6": ("layer_type", "warning", "name", "longname", "slice_id"),
    "0.7": ("layer_type", "status", "name", "longname", "slice_id"),
}

#: Summary keys (``get_summary()``) and one-row-per-model table columns -> ``models`` columns.
#: 0.2.x names and later names never collide, so one table serves every release.
SUMMARY_NAMES = {
    # WeightWatcher 0.2.x (the ww-trends-2020 tables; get_summary() of 0.2.7)
    "lognorm": "log_norm",
    "logspectralnorm": "log_spectral_norm",
    "spectralnorm": "lambda_max",
    "alpha": "alpha",
    "alpha_weighted": "alpha_weighted",
    "logpnorm": "log_alpha_norm",
    "softrank": "stable_rank",
    "softrank_mp": "mp_softrank",
    # WeightWatcher >= 0.4 get_summary() / details averages
    "log_norm": "log_norm",
    "log_spectral_norm": "log_spectral_norm",
    "spectral_norm": "lambda_max",
    "lambda_max": "lambda_max",
    "log_alpha_norm": "log_alpha_norm",
    "stable_rank": "stable_rank",
    "entropy": "entropy",
    "mp_softrank": "mp_softrank",
    "rand_distance": "rand_distance",
}

# WeightWatcher layer types -> ww_ray's (linear | conv2d | conv1d | embedding | ...); others lower-cased.
_TYPE_NAMES = {"dense": "linear", "linear": "linear", "conv2d": "conv2d", "conv1d": "conv1d",
               "embedding": "embedding", "norm": "norm"}
# LAYER_TYPE is an IntFlag; Python >= 3.11 writes str(LAYER_TYPE.DENSE) as its number.
_TYPE_CODES = {
    "0.2": {1: "dense", 2: "conv1d", 4: "conv2d"},
    "0.4-0.6": {1: "unknown", 2: "stacked", 4: "dense", 8: "conv1d", 16: "conv2d", 32: "flattened",
                64: "embedding", 128: "norm"},
}
#: Fit statuses WeightWatcher writes, -> ww_ray row status.
FIT_STATUSES = {"success": "ok", "failed": "failed"}


def detect_layout(columns: Sequence[str]) -> str | None:
    """The layout of a ``get_details()`` table (or summary keys) from its column names; None if not WeightWatcher's."""
    names = {str(c) for c in columns}
    if names & {"level", "lognorm", "logspectralnorm", "spectralnorm", "logpnorm", "softrank"}:
        return "0.2"
    if "log_norm" in names or "alpha_weighted" in names or "log_spectral_norm" in names:
        return "0.7" if "status" in names else "0.4-0.6"
    return None


def layer_type_name(value: object, layout: str) -> str | None:
    """A WeightWatcher layer type (``LAYER_TYPE.CONV2D``, ``CONV2D``, ``conv2d`` or its number) as ww_ray names it."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.0)?", text):
        text = _TYPE_CODES.get(layout, _TYPE_CODES["0.4-0.6"]).get(int(float(text)), f"code {text}")
    text = text.rsplit(".", 1)[-1].lower()
    return _TYPE_NAMES.get(text, text)


def weightwatcher_release(analyzer_version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a WeightWatcher release named in ``analyzer_version``, else None.

    >>> weightwatcher_release("weightwatcher-0.2.7"), weightwatcher_release("0.6.4"), weightwatcher_release("ww_ray-spectral-1")
    ((0, 2), (0, 6), None)
    """
    text = str(analyzer_version or "").strip()
    match = re.search(r"(?:weightwatcher|\bww)[-_ =v]*(\d+)\.(\d+)", text, re.IGNORECASE) or \
        re.fullmatch(r"v?(\d+)\.(\d+)(?:\.[\dx]+)*", text, re.IGNORECASE)
    return (int(match.group(1)), int(match.group(2))) if match else None


def log_norm_meaning(analyzer_version: str | None) -> str | None:
    """``FROBENIUS`` or ``FROBENIUS_SQUARED`` for what computed a row; None when unknown (e.g. ``external``)."""
    text = str(analyzer_version or "")
    if text.startswith("ww_ray"):
        return FROBENIUS_SQUARED
    release = weightwatcher_release(text)
    if release is None:
        return None
    return FROBENIUS if release < (0, 4) else FROBENIUS_SQUARED


def layout_of_release(analyzer_version: str | None) -> str | None:
    """The details layout a named WeightWatcher release writes, or None when the string names none."""
    release = weightwatcher_release(analyzer_version)
    if release is None:
        return None
    return "0.2" if release < (0, 4) else ("0.4-0.6" if release < (0, 7) else "0.7")
