"""``open_source``: turn whatever the user hands ``ww_ray.analyze`` into a spec and its layer weights.

Accepted sources: a ``torch.nn.Module``; a state dict (mapping of names to tensors, possibly
nested under ``state_dict``/``model``); a path to a ``.safetensors`` / ``.gguf`` / ``.pt/.pth/.th/.bin`` file
or a Hugging Face model folder (a quantized one — GPTQ, AWQ, bitsandbytes — is ``skipped``, format
named); a URL of a safetensors folder or file (``s3://``, ``gs://``, ``hf://org/name@revision``: the url
zoo, read by byte ranges); or a zoo URI such as ``pytorchcv:resnet20_cifar10`` or
``hf:openai-community/gpt2`` (``hf:org/name@revision`` pins a revision). A folder holding a LoRA adapter
(``adapter_config.json``) gives its deltas ΔW = scale·B·A (``ww_ray.zoos.adapters``).

With a base: ``open_source(ADAPTER, base_model=BASE)`` (or ``open_source(BASE, adapter=ADAPTER)``)
gives the base's weights, the adapter's deltas and the merged W₀ + ΔW; ``base_model="auto"`` takes
the adapter config's ``base_model_name_or_path``. ``open_source(MODEL, base_model=BASE)`` for any
other model gives its weights, the base's and ΔW = W − W_base (``ww_ray.zoos.finetune``).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import replace
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ww_ray.weights import LayerWeight
from ww_ray.zoos.adapters import is_adapter_folder, open_adapter, resolve_base
from ww_ray.zoos.checkpoint import (
    CheckpointError,
    checkpoint_digest,
    checkpoint_files,
    find_state_dict,
    flatten_tensors,
    iter_state_dict,
    read_hf_config,
    strip_wrapper_prefixes,
    tensor_shapes,
)
from ww_ray.errors import ModelSkipped
from ww_ray.zoos.gguf_file import GGUF_SUFFIX, architecture as gguf_architecture
from ww_ray.zoos.layers import guess_model_type, layer_weights_from_module, layer_weights_from_state_dict
from ww_ray.zoos.names import count_parameters
from ww_ray.zoos.registry import load_layer_weights, spec_from_uri, uri_schemes
from ww_ray.zoos.remote import is_url
from ww_ray.zoos.repo_kind import local_kind, quantization_format, quantized_skip_reason
from ww_ray.zoos.spec import LOAD_ERROR, ModelSpec

def is_zoo_uri(source: object) -> bool:
    """True for strings like ``pytorchcv:name`` or ``hf:org/name``: a scheme a registered zoo kind serves."""
    if not isinstance(source, str) or ":" not in source:
        return False
    scheme = source.split(":", 1)[0]
    return scheme in uri_schemes()


def open_source(source: Any, base_model: Any = None, adapter: Any = None,
                **zoo_options: Any) -> tuple[ModelSpec, Iterator[LayerWeight]]:
    """Resolve ``source`` into its ``ModelSpec`` and a lazy iterator of its ``LayerWeight`` objects.

    ``zoo_options`` go to the zoo behind a URI (for example ``root=`` for pytorchcv weights,
    ``cache_dir=`` for the Hugging Face cache, ``allow_pickle=True`` for ``pytorch_model.bin``).
    ``base_model`` / ``adapter``: see the module docstring (any source kind for the base; a folder
    for the adapter).

    Raises:
        CheckpointError: a path that is missing, not a checkpoint, or unsafe to unpickle.
        ww_ray.errors.ZooError: a zoo URI that cannot be resolved or reached.
        TypeError: a source of an unsupported type.
    """
    if adapter is not None:
        if base_model is not None:
            raise TypeError("give the base either as the source (with adapter=) or as base_model=, not both")
        if not is_adapter_folder(adapter):
            raise CheckpointError(f"adapter={adapter!r} is not a folder with adapter_config.json and adapter weights")
        return open_adapter_source(Path(adapter), source, **zoo_options)
    if isinstance(source, (str, os.PathLike)) and not is_zoo_uri(source) and is_adapter_folder(source):
        return open_adapter_source(Path(source), base_model, **zoo_options)
    if base_model is not None:
        return _open_with_base(source, base_model, **zoo_options)
    if isinstance(source, nn.Module):
        return _open_module(source)
    if isinstance(source, Mapping):
        return _open_state_dict(source)
    if is_url(source):  # s3://, gs://, hf://org/name@rev: the url zoo, read by byte ranges
        return _open_url(str(source))
    if is_zoo_uri(source):
        spec = spec_from_uri(source, **zoo_options)
        return spec, load_layer_weights(spec, **zoo_options)
    if isinstance(source, (str, os.PathLike)):
        return open_path(Path(source), allow_pickle=bool(zoo_options.get("allow_pickle", False)))
    raise TypeError(
        f"cannot analyse a {type(source).__name__}: pass a torch.nn.Module, a state dict, a checkpoint path "
        "or a zoo URI (pytorchcv:NAME, hf:ORG/NAME)"
    )


def open_adapter_source(folder: Path, base: Any = None, *, source: str = "local", model_id: str | None = None,
                        **zoo_options: Any) -> tuple[ModelSpec, Iterator[LayerWeight]]:
    """An adapter folder, with its base when ``base`` is given (any source; ``"auto"``: the adapter
    config's ``base_model_name_or_path``, left out with a warning when it cannot be opened)."""
    allow_pickle = bool(zoo_options.get("allow_pickle", False))
    base_source = resolve_base(folder, base)
    opened = None
    if base_source is not None:
        try:
            opened = open_source(base_source, **zoo_options)
        except Exception as exc:
            if not (isinstance(base, str) and base == "auto"):
                raise
            warnings.warn(f"adapter {folder.name}: its base {base_source} cannot be opened ({exc}); analysing the "
                          "adapter's deltas only", stacklevel=3)
    return open_adapter(folder, opened, source=source, model_id=model_id, allow_pickle=allow_pickle)


def _open_with_base(source: Any, base_model: Any, **zoo_options: Any) -> tuple[ModelSpec, Iterator[LayerWeight]]:
    from ww_ray.zoos.finetune import with_base_weights

    if isinstance(base_model, str) and base_model == "auto":
        raise ValueError("base_model='auto' reads an adapter's config; for a fine-tune, name its base "
                         "(a path, a module, a state dict or a zoo URI such as hf:ORG/NAME)")
    spec, weights = open_source(source, **zoo_options)
    base_spec, base_weights = open_source(base_model, **zoo_options)
    base_id = base_spec.model_id or str(base_model)
    spec = replace(spec, extra={**spec.extra, "base_model": base_id})
    return spec, with_base_weights(weights, base_weights, base_id)


def _open_url(url: str) -> tuple[ModelSpec, Iterator[LayerWeight]]:
    from ww_ray.errors import ZooError
    from ww_ray.zoos.config import ZooConfig
    from ww_ray.zoos.registry import make_zoo

    zoo = make_zoo(ZooConfig(kind="url", options={"models": [url]}))
    spec = zoo.spec_for(url)
    if spec.extra.get(LOAD_ERROR):
        raise ZooError(str(spec.extra[LOAD_ERROR]))
    return spec, zoo.load(spec)


def _open_module(module: nn.Module) -> tuple[ModelSpec, Iterator[LayerWeight]]:
    weights = layer_weights_from_module(module)
    params = sum(int(p.numel()) for p in module.parameters())
    spec = ModelSpec(source="module", model_id=type(module).__name__, architecture=type(module).__name__,
                     params=params, zoo_kind="module")
    return spec, iter(weights)


def _open_state_dict(state: Mapping[str, Any]) -> tuple[ModelSpec, Iterator[LayerWeight]]:
    inner = find_state_dict(state, origin="state dict")
    pairs = list(flatten_tensors(inner))
    renamed = strip_wrapper_prefixes([name for name, _ in pairs])
    items = [(renamed[name], tensor) for name, tensor in pairs]
    model_type = guess_model_type(name for name, _ in items)
    params = count_parameters((k, tuple(t.shape)) for k, t in items if t.is_floating_point())
    spec = ModelSpec(source="state_dict", model_id="state_dict", architecture=model_type, params=params,
                     zoo_kind="module", extra={"model_type": model_type} if model_type else {})
    return spec, layer_weights_from_state_dict(items, model_type=model_type)


def open_path(path: Path, *, allow_pickle: bool = False, source: str = "local", model_id: str | None = None,
              spec_fields: Mapping[str, Any] | None = None) -> tuple[ModelSpec, Iterator[LayerWeight]]:
    """Spec and lazy layer weights of a checkpoint file or Hugging Face folder.

    The revision is the SHA-256 of the weight file(s); ``spec_fields`` fill in known metadata
    (architecture, dataset, reported figures) and override what is read from the files.
    """
    path = Path(path)
    files = checkpoint_files(path, allow_pickle_in_folders=allow_pickle)
    config = read_hf_config(path) if path.is_dir() else {}
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    all_safetensors = all(f.suffix == ".safetensors" for f in files)
    params: int | None = None
    architecture = model_type
    if all(f.suffix.lower() == GGUF_SUFFIX for f in files):
        shapes = tensor_shapes(path)   # from the GGUF header; weights dequantized one at a time as read
        params = count_parameters((name, shape) for name, shape, _ in shapes)
        architecture = architecture or gguf_architecture(files[0])
        items: Any = iter_state_dict(path)
    elif all_safetensors:
        shapes = tensor_shapes(path, allow_pickle_in_folders=allow_pickle)
        fmt = quantization_format(config, (name for name, _, _ in shapes))
        if fmt:
            raise ModelSkipped(quantized_skip_reason(str(path), fmt))
        params = count_parameters((name, shape) for name, shape, _ in shapes)
        if model_type is None:
            model_type = architecture = guess_model_type(name for name, _, _ in shapes)
        items = iter_state_dict(path, allow_pickle_in_folders=allow_pickle)
    else:
        # Pickles are read whole anyway: load now so an unsafe or broken file fails here, not mid-analysis.
        items = list(iter_state_dict(path, allow_pickle_in_folders=allow_pickle))
        fmt = quantization_format(config, (name for name, _ in items))
        if fmt:
            raise ModelSkipped(quantized_skip_reason(str(path), fmt))
        params = count_parameters((k, tuple(t.shape)) for k, t in items if t.is_floating_point())
        if model_type is None:
            model_type = architecture = guess_model_type(name for name, _ in items)
    extra: dict[str, Any] = {"files": [str(f) for f in files]}
    if model_type:
        extra["model_type"] = model_type
    fields: dict[str, Any] = {
        "source": source,
        "model_id": model_id or _default_model_id(path),
        "revision": checkpoint_digest(files),
        "architecture": architecture,
        "params": params,
        "uri": str(path.resolve()),
        "size_bytes": sum(f.stat().st_size for f in files),
        "repo_kind": local_kind(path, config).kind,
        "zoo_kind": "local",
        "extra": extra,
    }
    fields.update(spec_fields or {})
    spec = ModelSpec(**fields)
    return spec, layer_weights_from_state_dict(items, model_type=model_type)


def _default_model_id(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


__all__ = ["CheckpointError", "is_zoo_uri", "open_adapter_source", "open_path", "open_source"]
