"""``ModelSpec``: one model a zoo can provide, with its keys and the figures its source published.

A spec is small, immutable and picklable (it travels to Ray tasks). Its fields map one to one
onto the model columns of ``store/schema.py`` (``MODELS_SCHEMA``); ``to_row()`` gives them.
Reported figures keep what they measure: ``top1_error`` / ``top5_error`` are error percentages,
``reported_value`` is the source's headline figure and ``reported_measure`` names it
(one of ``MEASURES``), so a regression never mixes errors with mIoU or AP. Figures of any other
metric (a model card's ``model-index``, a figures CSV) are ``reported_figures``: ``zoos.figures.Figure``
objects that keep task, dataset, split, metric and direction; only figures of one ``Figure.target``
are regressed together.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ww_ray.keys import ModelKey, model_key

if TYPE_CHECKING:
    from ww_ray.zoos.config import ZooConfig

# ``extra`` key of the reason a zoo marks a model skipped (too large, no weights published ...).
SKIP_REASON = "skip_reason"
#: ``spec.extra`` key of a listing-time failure (a broken link, an unreachable repo): loading raises it.
LOAD_ERROR = "load_error"

# What a reported figure measures; all in percent. ``lower_is_better`` tells errors from scores.
MEASURES: dict[str, tuple[str, bool]] = {
    "top1_error": ("top-1 error %", True),
    "top5_error": ("top-5 error %", True),
    "error": ("error % (task-specific)", True),
    "wer": ("word error rate %", True),
    "miou": ("mean intersection over union %", False),
    "pixel_accuracy": ("pixel accuracy %", False),
    "ap": ("average precision %", False),
    "auc": ("area under the ROC curve", False),
    "accuracy": ("accuracy %", False),
    "perplexity": ("perplexity", True),
}
ERROR_MEASURES = frozenset(m for m, (_, lower) in MEASURES.items() if lower and m != "perplexity")

# Canonical dataset names; inputs are lower-cased and stripped of punctuation before lookup.
_DATASET_ALIASES = {
    "in1k": "imagenet1k", "imagenet": "imagenet1k", "imagenet1k": "imagenet1k", "ilsvrc2012": "imagenet1k",
    "cifar10": "cifar10", "cf10": "cifar10", "cifar100": "cifar100", "cf100": "cifar100",
    "svhn": "svhn", "cub": "cub200", "cub200": "cub200", "cub2002011": "cub200",
    "voc": "voc", "pascalvoc": "voc", "ade20k": "ade20k", "cs": "cityscapes", "cityscapes": "cityscapes",
    "cocoseg": "cocoseg", "coco": "coco", "cocohpe": "cocohpe", "mcv": "commonvoice", "commonvoice": "commonvoice",
    "mnist": "mnist",
}


def normalize_dataset(name: str | None) -> str | None:
    """Canonical dataset name: ``"CIFAR-10"`` → ``cifar10``, ``"ImageNet-1K"``/``in1k`` → ``imagenet1k``."""
    if name is None:
        return None
    text = str(name).strip()
    if not text or text.upper() == "NA":
        return None
    key = re.sub(r"[^a-z0-9]", "", text.lower())
    return _DATASET_ALIASES.get(key, key or None)


@dataclass(frozen=True)
class ModelSpec:
    """A model a zoo can load, keyed by ``(source, model_id, revision)``.

    Attributes:
        source: the zoo instance's name (``pytorchcv``, ``hf``, a local folder's name, ``module`` ...).
        model_id: the model's name inside that source (pytorchcv name, Hub repo id, relative file path).
        revision: weight identity: Hub commit sha, pytorchcv weight SHA-1, or sha256 of local files.
        architecture: architecture series (the unit of a regression).
        dataset: canonical dataset name (``normalize_dataset``).
        task: classification, segmentation, pose, speech, language-model ...
        params: number of parameters when known.
        top1_error, top5_error: published error percentages, None where not published.
        reported_value, reported_measure: the source's headline figure and what it measures.
        uri: where the weights come from (path, URL, ``hf://`` id).
        size_bytes: size of the weight files when known before loading.
        repo_kind: what holds the weights (``zoos.repo_kind.REPO_KINDS``: full, sharded, adapter, gguf,
            quantized, no_weights), judged from file names and config.json; None when not judged.
        base_model: the model this one was made from (card ``base_model``, an adapter's base).
        reported_figures: figures of any metric (model card ``model-index``, a figures CSV).
        zoo_kind: the registry kind that made the spec (``local``, ``pytorchcv``, ``hub``, ``module``...).
        zoo: the config of the zoo that made it (None for a module or state dict), so a Ray task
            on another node can rebuild that zoo to load it.
        extra: free per-zoo details (file list, config model_type, other published figures ...).
    """

    source: str
    model_id: str
    revision: str | None = None
    architecture: str | None = None
    dataset: str | None = None
    task: str | None = None
    params: int | None = None
    top1_error: float | None = None
    top5_error: float | None = None
    reported_value: float | None = None
    reported_measure: str | None = None
    uri: str | None = None
    size_bytes: int | None = None
    repo_kind: str | None = None
    base_model: str | None = None
    # zoos.figures.Figure objects (not imported here: figures.py reads this module's MEASURES)
    reported_figures: tuple[Any, ...] = field(default=(), hash=False, compare=False)
    zoo_kind: str = "module"
    zoo: "ZooConfig | None" = field(default=None, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not self.source or not self.model_id:
            raise ValueError("a ModelSpec needs a non-empty source and model_id")
        if self.reported_measure is not None and self.reported_measure not in MEASURES:
            raise ValueError(f"unknown reported_measure {self.reported_measure!r}; expected one of {sorted(MEASURES)}")
        for name in ("top1_error", "top5_error", "reported_value"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(float(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")

    @property
    def key(self) -> ModelKey:
        """The dataset key (``ww_ray.keys.model_key``: an unknown revision is ``""``)."""
        return model_key(self.source, self.model_id, self.revision)

    @property
    def figures(self) -> dict[str, float]:
        """Every published figure by what it measures (top-1/top-5 errors and the headline figure)."""
        out: dict[str, float] = {}
        if self.top1_error is not None:
            out["top1_error"] = float(self.top1_error)
        if self.top5_error is not None:
            out["top5_error"] = float(self.top5_error)
        if self.reported_value is not None and self.reported_measure:
            out.setdefault(self.reported_measure, float(self.reported_value))
        for measure, value in (self.extra.get("figures") or {}).items():
            out.setdefault(str(measure), float(value))
        return out

    def with_figures(self, figures: Mapping[str, float]) -> "ModelSpec":
        """A copy with these figures merged over the current ones (headline: top-1, else top-5, else other)."""
        merged = {**self.figures, **{str(k): float(v) for k, v in figures.items() if v is not None}}
        others = {k: v for k, v in merged.items() if k not in ("top1_error", "top5_error")}
        extra = {k: v for k, v in self.extra.items() if k != "figures"}
        if others:
            extra["figures"] = others
        return replace(self, **figure_fields(merged), extra=extra)

    def with_reported_figures(self, figures: "tuple[Any, ...] | list[Any]") -> "ModelSpec":
        """A copy with ``figures`` added; a new figure replaces an old one of the same target."""
        merged = {f.target: f for f in self.reported_figures}
        merged.update({f.target: f for f in figures})
        return replace(self, reported_figures=tuple(merged.values()))

    def to_row(self) -> dict[str, Any]:
        """The ``MODELS_SCHEMA`` columns this spec fills."""
        row = asdict(self)
        for name in ("zoo_kind", "zoo", "extra"):
            row.pop(name)
        row["reported_figures"] = list(row["reported_figures"]) or None
        return row


def figure_fields(figures: dict[str, float]) -> dict[str, Any]:
    """Spec fields (top1_error, top5_error, reported_value, reported_measure) from measure → value."""
    for measure in figures:
        if measure not in MEASURES:
            raise ValueError(f"unknown measure {measure!r}; expected one of {sorted(MEASURES)}")
    top1 = figures.get("top1_error")
    top5 = figures.get("top5_error")
    if top1 is not None:
        headline = ("top1_error", top1)
    elif top5 is not None:
        headline = ("top5_error", top5)
    elif figures:
        headline = next(iter(figures.items()))
    else:
        headline = (None, None)
    return {"top1_error": top1, "top5_error": top5, "reported_measure": headline[0], "reported_value": headline[1]}
