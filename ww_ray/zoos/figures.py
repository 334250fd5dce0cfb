"""Reported figures that keep what they measure: task, dataset, split, metric, value, higher-is-better.

A model card's ``model-index`` (``zoos.model_card``) and a user's figures CSV (a leaderboard export:
model id, benchmark, score) give figures of any metric on any dataset. Each is a :class:`Figure`; two
figures are comparable — a regression may put them on one axis — only when their :attr:`Figure.target`
(dataset, split when given, metric) is the same. ``HIGHER_IS_BETTER`` / ``LOWER_IS_BETTER`` are the one
table that says which way a metric name points; ``spec.MEASURES`` answers first for its own names.

A figures CSV is long (``model_id, benchmark, score`` plus optional ``revision, metric, split, task,
higher_is_better``: one figure per row) or wide (``model_id`` plus one numeric column per benchmark,
as leaderboard exports are: each cell a figure with metric ``score``; columns that describe the model —
``#Params (B)``, likes, dates, type, precision — are not benchmarks). A row with a ``revision`` applies
to that revision only; a row without one applies to every revision of the model.

    >>> higher_is_better("accuracy"), higher_is_better("eval_loss"), higher_is_better("WER")
    (True, False, False)
    >>> Figure(dataset="glue/mrpc", metric="f1", value=0.9, split="validation").target
    'glue/mrpc@validation:f1'
"""
from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ww_ray.errors import ZooError
from ww_ray.zoos.metadata import cell_number, cell_text
from ww_ray.zoos.spec import MEASURES

#: Prefix of a regression target that names a figure (``figure:glue/mrpc@validation:accuracy``).
FIGURE_TARGET_PREFIX = "figure:"

# Metric-name fragments, checked in this order: "lower" first so that ``top1_error`` or ``eval_loss``
# is never taken for a score because it also contains ``top1`` or ``eval``.
LOWER_IS_BETTER = ("error", "err", "loss", "perplexity", "ppl", "wer", "cer", "ter", "mse", "rmse", "mae",
                   "fid", "bpb", "bits_per_byte", "bpc", "eer", "latency", "distance", "nll")
HIGHER_IS_BETTER = ("accuracy", "acc", "f1", "exact_match", "em", "precision", "recall", "bleu", "rouge",
                    "meteor", "chrf", "map", "ap", "auc", "iou", "miou", "pass", "spearman", "pearson",
                    "matthews", "mcc", "kappa", "ndcg", "mrr", "score", "bertscore", "r2", "top1", "top5",
                    "win_rate", "correlation", "sari", "cider", "spice")


def normalize_name(text: Any) -> str | None:
    """Lower-case, punctuation to ``_``: ``"Exact Match"`` → ``exact_match``; None for blanks."""
    if text is None:
        return None
    name = re.sub(r"[^a-z0-9@/.+-]+", "_", str(text).strip().lower()).strip("_")
    return name or None


def higher_is_better(metric: str | None) -> bool | None:
    """Whether a larger value of ``metric`` is better, from its name; None when the name says nothing."""
    name = normalize_name(metric)
    if name is None:
        return None
    if name in MEASURES:
        return not MEASURES[name][1]
    tokens = set(re.split(r"[^a-z0-9]+", name)) | {name}
    stripped = {re.sub(r"\d+$", "", t) for t in tokens}  # rouge1, bleu4, top1 → rouge, bleu, top
    for table, answer in ((LOWER_IS_BETTER, False), (HIGHER_IS_BETTER, True)):
        if any(word in tokens or word in stripped for word in table):
            return answer
    return None


@dataclass(frozen=True)
class Figure:
    """One reported figure. ``dataset`` is e.g. ``glue/mrpc`` (dataset type, then its config)."""

    dataset: str
    metric: str
    value: float
    higher_is_better: bool | None = None
    task: str | None = None
    split: str | None = None
    origin: str | None = None   # "model-index" or the figures CSV's file name

    def __post_init__(self) -> None:
        if not self.dataset or not self.metric:
            raise ValueError("a Figure needs a dataset and a metric")
        if not math.isfinite(float(self.value)):
            raise ValueError(f"figure {self.metric} on {self.dataset} is not a finite number: {self.value!r}")

    @property
    def target(self) -> str:
        """What the figure measures, as comparable figures share it: ``dataset[@split]:metric``."""
        where = f"{self.dataset}@{self.split}" if self.split else self.dataset
        return f"{where}:{self.metric}"


def make_figure(dataset: Any, metric: Any, value: Any, *, task: Any = None, split: Any = None,
                origin: str | None = None, higher: bool | None = None) -> Figure | None:
    """A normalised Figure, or None when the dataset, metric or a finite numeric value is missing."""
    dataset_name, metric_name = normalize_name(dataset), normalize_name(metric)
    try:
        number = float(str(value).strip().rstrip("%").replace(",", "")) if value is not None else None
    except ValueError:
        number = None
    if dataset_name is None or metric_name is None or number is None or not math.isfinite(number):
        return None
    return Figure(dataset=dataset_name, metric=metric_name, value=number,
                  higher_is_better=higher if higher is not None else higher_is_better(metric_name),
                  task=normalize_name(task), split=normalize_name(split), origin=origin)


def common_dataset(figures: Iterable[Figure]) -> str | None:
    """The one dataset all ``figures`` are on (a Hub model's ``dataset`` when the zoo names none), else None."""
    datasets = {f.dataset for f in figures}
    return datasets.pop() if len(datasets) == 1 else None


def figure_target(figure_key: str) -> str:
    """The regression target name of a figure key (``glue/mrpc:f1`` → ``figure:glue/mrpc:f1``)."""
    return figure_key if figure_key.startswith(FIGURE_TARGET_PREFIX) else FIGURE_TARGET_PREFIX + figure_key


def figures_value(figures: Any, target: str) -> float | None:
    """The value of the figure whose target is ``target`` in one row's ``reported_figures`` (None if absent)."""
    key = target[len(FIGURE_TARGET_PREFIX):] if target.startswith(FIGURE_TARGET_PREFIX) else target
    for figure in _as_dicts(figures):
        if _target_of(figure) == key:
            value = figure.get("value")
            return None if value is None else float(value)
    return None


def figure_targets(figures: Any) -> list[str]:
    """The distinct targets of one row's ``reported_figures`` (dicts as read from the store, or Figures)."""
    return list(dict.fromkeys(_target_of(f) for f in _as_dicts(figures)))


def figure_direction(figures_column: Iterable[Any], target: str) -> bool | None:
    """``higher_is_better`` of ``target`` as the figures in a column state it (None when unknown or mixed)."""
    key = target[len(FIGURE_TARGET_PREFIX):] if target.startswith(FIGURE_TARGET_PREFIX) else target
    seen = {f.get("higher_is_better") for figures in figures_column for f in _as_dicts(figures)
            if _target_of(f) == key}
    return seen.pop() if len(seen) == 1 else None


def _as_dicts(figures: Any) -> list[Mapping[str, Any]]:
    if figures is None or (isinstance(figures, float) and math.isnan(figures)):
        return []
    out = []
    for item in list(figures):
        if isinstance(item, Figure):
            out.append({"dataset": item.dataset, "metric": item.metric, "split": item.split, "value": item.value,
                        "higher_is_better": item.higher_is_better})
        elif isinstance(item, Mapping):
            out.append(item)
    return out


def _target_of(figure: Mapping[str, Any]) -> str:
    split = figure.get("split")
    where = f"{figure.get('dataset')}@{split}" if split else str(figure.get("dataset"))
    return f"{where}:{figure.get('metric')}"


# ---- the figures CSV ----------------------------------------------------------------------------

_ID = ("model_id", "model", "model_name", "repo_id", "name", "fullname")
_REVISION = ("revision", "sha", "commit")
_BENCHMARK = ("benchmark", "dataset", "task_name", "eval")
_VALUE = ("score", "value", "result")
_OPTIONAL = {"metric": ("metric", "metric_name"), "split": ("split",), "task": ("task",),
             "higher_is_better": ("higher_is_better",)}
_NOT_BENCHMARKS = set(_ID) | set(_REVISION) | {"params", "architecture", "type", "precision", "license", "note",
                                               "notes", "link", "url", "date", "hub_license", "submission_date"}
# Numeric columns of leaderboard exports that describe the model, not a benchmark (#Params (B), Hub ❤️ ...).
_DESCRIPTIVE = re.compile(r"param|size|like|download|hub|flag|moe|merge|availab|sha|date|co2|precision|license|type|rank")


@dataclass(frozen=True)
class FiguresTable:
    """A figures CSV, read: ``(model_id, revision or None)`` → its figures."""

    path: str
    rows: Mapping[tuple[str, str | None], tuple[Figure, ...]]

    def figures_for(self, model_id: str, revision: str | None) -> tuple[Figure, ...]:
        """The figures of one model revision: rows naming that revision, then rows naming none."""
        pinned = self.rows.get((model_id, revision), ()) if revision else ()
        return tuple(dict.fromkeys(pinned + self.rows.get((model_id, None), ())))


def read_figures_csv(path: str | Path) -> FiguresTable:
    """Read a long or wide figures CSV (module docstring); a bad value is a ZooError naming its line."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ZooError(f"cannot read figures CSV {path}: {exc}") from exc
    lower = {c.strip().lower(): c for c in columns if c}
    pick = lambda names: next((lower[n] for n in names if n in lower), None)  # noqa: E731
    id_column, revision_column = pick(_ID), pick(_REVISION)
    if id_column is None:
        raise ZooError(f"figures CSV {path} needs a model id column (one of {list(_ID)}); found {columns}")
    benchmark_column, value_column = pick(_BENCHMARK), pick(_VALUE)
    optional = {key: pick(names) for key, names in _OPTIONAL.items()}
    long_format = benchmark_column is not None and value_column is not None
    wide = [] if long_format else [c for c in columns if c and c.strip().lower() not in _NOT_BENCHMARKS
                                   and c.strip().lower() not in set().union(*_OPTIONAL.values())
                                   and not _DESCRIPTIVE.search(c.strip().lower())]
    rows: dict[tuple[str, str | None], list[Figure]] = {}
    for line, record in enumerate(records, start=2):
        model_id = cell_text(record.get(id_column))
        if model_id is None:
            continue
        revision = cell_text(record.get(revision_column)) if revision_column else None
        extras = {key: cell_text(record.get(column)) if column else None for key, column in optional.items()}
        higher = _bool(extras["higher_is_better"], path, line)
        cells = [(record.get(benchmark_column), record.get(value_column))] if long_format \
            else [(column, record.get(column)) for column in wide]
        for benchmark, raw in cells:
            value = cell_number(raw, path, line, value_column or str(benchmark), strict=long_format)
            if value is None:
                continue
            figure = make_figure(benchmark, extras["metric"] or "score", value, task=extras["task"],
                                 split=extras["split"], origin=path.name, higher=higher)
            if figure is not None:
                rows.setdefault((model_id, revision), []).append(figure)
    return FiguresTable(str(path), {key: tuple(figures) for key, figures in rows.items()})


def _bool(text: str | None, path: Path, line: int) -> bool | None:
    if text is None:
        return None
    if text.lower() in ("true", "yes", "1", "higher"):
        return True
    if text.lower() in ("false", "no", "0", "lower"):
        return False
    raise ZooError(f"{path}, line {line}: higher_is_better holds {text!r}; use true or false")
