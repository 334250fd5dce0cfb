"""Forward (module) order of a checkpoint's tensor names, without reading any weight.

Safetensors headers list names alphabetically, so ``layer_index`` would put ``mlp`` before
``self_attn`` and ``layers.10`` before ``layers.2``. For a Hugging Face folder the true order is the
module order of the model class named by its ``config.json``: transformers builds the module
skeleton on the ``meta`` device (no weight allocated, a 7B skeleton in about a second), and
``named_parameters()`` gives the order. Only classes shipped with transformers are used, never
``trust_remote_code``. Names the skeleton does not know (or a folder without a usable config) fall
back to ``names.depth_order_key``: numbers compared numerically, the parts of common blocks in
their forward order.

    >>> forward_order(["layers.10.mlp.up_proj.weight", "layers.2.self_attn.q_proj.weight"], None)
    ['layers.2.self_attn.q_proj.weight', 'layers.10.mlp.up_proj.weight']
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from ww_ray.zoos.names import depth_order_key

log = logging.getLogger(__name__)


def forward_order(names: Iterable[str], config: Mapping[str, Any] | None) -> list[str]:
    """``names`` sorted in forward order (module order from ``config`` when transformers knows it)."""
    names = list(names)
    ranks = module_ranks(json.dumps(dict(config), sort_keys=True, default=str)) if config else {}
    if not ranks:
        return sorted(names, key=depth_order_key)
    ranked = {name: _rank_of(name, ranks) for name in names}
    known = sorted((n for n in names if ranked[n] is not None), key=lambda n: ranked[n])
    unknown = sorted((n for n in names if ranked[n] is None), key=depth_order_key)
    return known + unknown


def _rank_of(name: str, ranks: Mapping[str, int]) -> int | None:
    """Rank of a file key among the skeleton's parameter names, allowing a different top prefix
    (a ``LlamaModel`` file has ``layers.0…`` where ``LlamaForCausalLM`` has ``model.layers.0…``)."""
    if name in ranks:
        return ranks[name]
    parts = name.split(".")
    for cut in range(1, min(3, len(parts))):
        candidate = ".".join(parts[cut:])
        if candidate in ranks:
            return ranks[candidate]
    return None


@lru_cache(maxsize=16)
def module_ranks(config_json: str) -> dict[str, int]:
    """Parameter name → position in module order for a config (JSON text); {} when it cannot be built.

    Every name is entered with and without the class's base-model prefix, so both layouts of a
    checkpoint match.
    """
    try:
        import torch
        import transformers
        from transformers import AutoConfig
    except ImportError:
        return {}
    config_dict = json.loads(config_json)
    model_type = config_dict.get("model_type")
    if not isinstance(model_type, str):
        return {}
    try:
        config = AutoConfig.for_model(**config_dict)
        architectures = [a for a in (config_dict.get("architectures") or []) if isinstance(a, str)]
        model_class = next((getattr(transformers, a) for a in architectures if hasattr(transformers, a)), None)
        with torch.device("meta"):
            if model_class is not None:
                model = model_class(config)
            else:
                model = transformers.AutoModel.from_config(config)
    except Exception as exc:  # an unknown model_type, a config this transformers cannot build: heuristic order
        log.debug("no module skeleton for model_type %r: %s", model_type, exc)
        return {}
    prefix = getattr(model, "base_model_prefix", "") or ""
    ranks: dict[str, int] = {}
    for position, (name, _) in enumerate(model.named_parameters(remove_duplicate=False)):
        ranks.setdefault(name, position)
        if prefix and name.startswith(prefix + "."):
            ranks.setdefault(name[len(prefix) + 1:], position)
    for position, (name, _) in enumerate(model.named_buffers(remove_duplicate=False), start=len(ranks)):
        ranks.setdefault(name, position)
    return ranks
