"""Model cards: the ``model-index`` evaluation results and ``base_model`` of a Hub README, as figures.

Parsing is huggingface_hub's own (``ModelCard`` on the README text, or the ``ModelCardData`` the Hub's
``model_info`` returns as ``card_data``): each ``EvalResult`` becomes a :class:`~ww_ray.zoos.figures.Figure`
with the task type, the dataset (``type``, plus ``/config`` when the card names one: ``glue/mrpc``),
the split, the metric type and value, and whether higher is better (``figures.higher_is_better``).
Nothing is run and nothing is fetched: a README that is not valid YAML front matter gives no figures
and a warning, never an error for the model.

    >>> card = '''---
    ... model-index:
    ... - name: m
    ...   results:
    ...   - task: {type: text-classification}
    ...     dataset: {name: GLUE MRPC, type: glue, config: mrpc, split: validation}
    ...     metrics: [{type: accuracy, value: 0.86}]
    ... ---
    ... '''
    >>> [(f.target, f.value, f.higher_is_better) for f in card_figures(card)]
    [('glue/mrpc@validation:accuracy', 0.86, True)]
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ww_ray.zoos.figures import Figure, make_figure

#: Where a figure read from a card says it came from.
CARD_ORIGIN = "model-index"
#: The file of a Hub repo that holds the card.
README = "README.md"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CardFacts:
    """What a card says that ww_ray keeps: its figures and the model it was made from."""

    figures: tuple[Figure, ...] = ()
    base_model: str | None = None


def card_data_facts(data: Any) -> CardFacts:
    """Figures and base model of a ``ModelCardData`` (or None → nothing)."""
    if data is None:
        return CardFacts()
    figures = []
    for result in getattr(data, "eval_results", None) or []:
        dataset = result.dataset_type or result.dataset_name
        if dataset and result.dataset_config and str(result.dataset_config).lower() not in ("default", "none"):
            dataset = f"{dataset}/{result.dataset_config}"
        figure = make_figure(dataset, result.metric_type or result.metric_name, result.metric_value,
                             task=result.task_type, split=result.dataset_split, origin=CARD_ORIGIN)
        if figure is not None:
            figures.append(figure)
    base = getattr(data, "base_model", None)
    if isinstance(base, (list, tuple)):
        base = base[0] if len(base) == 1 else None  # a merge of several models has no single base
    return CardFacts(tuple(dict.fromkeys(figures)), str(base) if base else None)


def card_facts(text: str, *, where: str = "model card") -> CardFacts:
    """Figures and base model of a README text (YAML front matter with ``model-index``)."""
    from huggingface_hub import ModelCard

    try:
        card = ModelCard(text, ignore_metadata_errors=True)
        return card_data_facts(card.data)
    except Exception as exc:  # a malformed card is the card's problem, never the model's failure
        log.warning("%s: cannot parse the model card metadata (%s); no figures taken from it", where, exc)
        return CardFacts()


def card_figures(text: str) -> tuple[Figure, ...]:
    """The ``model-index`` figures of a README text."""
    return card_facts(text).figures
