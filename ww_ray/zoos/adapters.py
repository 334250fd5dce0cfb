"""LoRA adapters (peft's ``adapter_config.json`` + weights) as layer weights ΔW = scale·B·A, with or without their base.

An adapter folder holds ``adapter_config.json`` and ``adapter_model.safetensors`` (or, with
``allow_pickle``, ``adapter_model.bin``, read weights-only). Every adapted module gives one
``adapter_delta`` weight named by the base module path (``base_model.model.`` stripped): its
``LowRankFactors`` B (out × r), A (r × in) and scale = alpha/r (alpha/√r with ``use_rslora``), r and
alpha per module from ``rank_pattern``/``alpha_pattern`` with peft's own matching rule (a pattern
key matches a module path that ends with it after a dot, as a regular expression). The spectral core
turns it into an r×r problem (``ww_ray.spectral.lowrank``).

Refused with a clear ``CheckpointError``: a ``peft_type`` other than LORA, DoRA (``use_dora``: the
merged weight is rescaled per column, so ΔW is not low rank), a rank in the file that contradicts
the config, an A without its B. Left out (logged): tensors that are not LoRA factors
(``modules_to_save`` copies, biases): they are not deltas.

With a base (a path, module, state dict or zoo URI; ``"auto"``: the config's
``base_model_name_or_path``, a local folder if it exists else ``hf:ID``, skipped with a warning when it
cannot be opened) the weights come in the base's layer order: for each base layer its ``base``
weight, then for an adapted one its ``adapter_delta`` and its ``merged`` W₀ + ΔW.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ww_ray.spectral.lowrank import LowRankFactors, lora_scale
from ww_ray.spectral.matrices import as_float64
from ww_ray.weights import ADAPTER_DELTA, BASE, CONV1D, CONV2D, EMBEDDING, HF_CONV1D, LINEAR, MERGED, LayerWeight
from ww_ray.zoos.checkpoint import CheckpointError, checkpoint_digest, load_pickle, read_json_object
from ww_ray.zoos.names import depth_order_key
from ww_ray.zoos.spec import ModelSpec

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SAFETENSORS = "adapter_model.safetensors"
ADAPTER_PICKLE = "adapter_model.bin"
#: ``spec.extra`` key saying a spec is an adapter folder (its zoo loads it with ``open_adapter``).
ADAPTER_EXTRA = "adapter"
_PREFIX = "base_model.model."
_FACTOR = re.compile(r"^(?P<path>.+)\.(?P<part>lora_A|lora_B)\.weight$|^(?P<epath>.+)\.(?P<epart>lora_embedding_[AB])$")

log = logging.getLogger(__name__)


def is_adapter_folder(path: str | Path) -> bool:
    """True for a folder with ``adapter_config.json`` and adapter weights (safetensors or .bin)."""
    path = Path(path)
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file() and (
        (path / ADAPTER_SAFETENSORS).is_file() or (path / ADAPTER_PICKLE).is_file())


def adapter_files(folder: Path, allow_pickle: bool = False) -> list[Path]:
    """The weight file and the config of an adapter folder (what its revision is the digest of)."""
    if (folder / ADAPTER_SAFETENSORS).is_file():
        return [folder / ADAPTER_SAFETENSORS, folder / ADAPTER_CONFIG]
    if (folder / ADAPTER_PICKLE).is_file():
        if not allow_pickle:
            raise CheckpointError(f"{folder} holds only a pickled adapter ({ADAPTER_PICKLE}); reading it is off by "
                                  "default: pass allow_pickle=True (weights-only unpickling) or save it as safetensors")
        return [folder / ADAPTER_PICKLE, folder / ADAPTER_CONFIG]
    raise CheckpointError(f"{folder} has no {ADAPTER_SAFETENSORS} or {ADAPTER_PICKLE}")


def adapter_listing(siblings: dict[str, Any]) -> tuple[list[str], int | None] | None:
    """For a Hub repo's file listing (``rfilename -> sibling``): ``(files, total size)`` when it is a
    LoRA adapter repo (``adapter_config.json`` + ``adapter_model.safetensors`` at its root), else None."""
    if ADAPTER_CONFIG not in siblings or ADAPTER_SAFETENSORS not in siblings:
        return None
    files = [ADAPTER_SAFETENSORS, ADAPTER_CONFIG]
    sizes = [getattr(siblings[f], "size", None) for f in files]
    return files, (sum(int(s) for s in sizes) if all(sizes) else None)


@dataclass(frozen=True)
class AdapterConfig:
    """What the analysis needs from ``adapter_config.json``."""

    r: int
    lora_alpha: float
    use_rslora: bool = False
    fan_in_fan_out: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    base_model: str | None = None

    @staticmethod
    def _pattern_key(patterns: dict, module_path: str) -> str | None:
        """peft's ``get_pattern_key``: the first pattern key K with ``(.*\\.)?(K)$`` matching the path."""
        for key in patterns:
            try:
                if re.match(rf"(.*\.)?({key})$", module_path):
                    return key
            except re.error as exc:
                raise CheckpointError(f"{ADAPTER_CONFIG}: pattern {key!r} is not a regular expression ({exc})") from exc
        return None

    def rank_of(self, module_path: str) -> int:
        key = self._pattern_key(self.rank_pattern, module_path)
        return int(self.rank_pattern[key]) if key is not None else self.r

    def alpha_of(self, module_path: str) -> float:
        key = self._pattern_key(self.alpha_pattern, module_path)
        return float(self.alpha_pattern[key]) if key is not None else self.lora_alpha

    def scale_of(self, module_path: str) -> float:
        """scale = alpha/r (alpha/√r with rsLoRA), with the module's own r and alpha."""
        return lora_scale(self.alpha_of(module_path), self.rank_of(module_path), self.use_rslora)


def _number(config: dict, key: str, default: Any = None) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckpointError(f"{ADAPTER_CONFIG}: {key} must be a number, got {value!r}")
    return value


def _pattern(config: dict, key: str) -> dict:
    value = config.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CheckpointError(f"{ADAPTER_CONFIG}: {key} must map module patterns to numbers, got {value!r}")
    return {k: _number(value, k) for k in value}


def read_adapter_config(folder: Path) -> AdapterConfig:
    """The validated LoRA config of an adapter folder; unsupported adapters raise ``CheckpointError``."""
    path = Path(folder) / ADAPTER_CONFIG
    config = read_json_object(path)
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise CheckpointError(f"{path}: peft_type {peft_type} is not analysed; only LoRA adapters (ΔW = scale·B·A) are")
    if config.get("use_dora"):
        raise CheckpointError(f"{path}: DoRA adapters (use_dora) are not analysed: their merged weight rescales "
                              "every column by a learned magnitude, so ΔW is not the low-rank B·A")
    r = _number(config, "r")
    if r != int(r) or r <= 0:
        raise CheckpointError(f"{path}: r must be a positive integer, got {r!r}")
    base = config.get("base_model_name_or_path")
    return AdapterConfig(r=int(r), lora_alpha=float(_number(config, "lora_alpha", r)),
                         use_rslora=bool(config.get("use_rslora", False)),
                         fan_in_fan_out=bool(config.get("fan_in_fan_out", False)),
                         rank_pattern={k: int(v) for k, v in _pattern(config, "rank_pattern").items()},
                         alpha_pattern=_pattern(config, "alpha_pattern"),
                         base_model=base if isinstance(base, str) and base.strip() else None)


def _read_tensors(weights_file: Path) -> dict[str, Any]:
    if weights_file.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(weights_file), framework="pt") as handle:
                return {name: handle.get_tensor(name) for name in handle.keys()}
        except Exception as exc:  # a corrupt header or truncated file
            raise CheckpointError(f"cannot read {weights_file}: {exc}") from exc
    loaded = load_pickle(weights_file)
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{weights_file} does not hold a state dict")
    return loaded


def adapter_weights(folder: str | Path, *, allow_pickle: bool = False) -> list[LayerWeight]:
    """The ``adapter_delta`` weights of an adapter folder, in depth order of the base module paths."""
    folder = Path(folder)
    config = read_adapter_config(folder)
    tensors = _read_tensors(adapter_files(folder, allow_pickle)[0])
    factors: dict[str, dict[str, Any]] = {}
    left_out = []
    for name, tensor in tensors.items():
        match = _FACTOR.match(name)
        if match is None:
            left_out.append(name)
            continue
        path = match.group("path") or match.group("epath")
        part = match.group("part") or match.group("epart")
        path = path[len(_PREFIX):] if path.startswith(_PREFIX) else path
        factors.setdefault(path, {})[part] = tensor
    if left_out:
        log.info("%s: %d tensors are not LoRA factors and are left out (e.g. %s)", folder, len(left_out), left_out[0])
    weights = []
    for index, path in enumerate(sorted(factors, key=depth_order_key)):
        parts = factors[path]
        embedding = "lora_embedding_A" in parts or "lora_embedding_B" in parts
        a = parts.get("lora_embedding_A" if embedding else "lora_A")
        b = parts.get("lora_embedding_B" if embedding else "lora_B")
        if a is None or b is None:
            raise CheckpointError(f"{folder}: {path} has only {', '.join(sorted(parts))}; a LoRA module needs A and B")
        b_matrix = b.reshape(b.shape[0], -1) if b.ndim > 2 else b   # conv LoRA: B is (out, r, 1, 1)
        rank = int(a.shape[0])
        if int(b_matrix.shape[1]) != rank or rank != config.rank_of(path):
            raise CheckpointError(f"{folder}: {path} has A {tuple(a.shape)} and B {tuple(b.shape)}, but the config "
                                  f"says r={config.rank_of(path)}")
        kind = EMBEDDING if embedding else {2: HF_CONV1D if config.fan_in_fan_out else LINEAR,
                                            3: CONV1D, 4: CONV2D}.get(a.ndim, LINEAR)
        weights.append(LayerWeight(name=path, index=index, kind=kind, role=ADAPTER_DELTA,
                                   tensor=LowRankFactors(B=b_matrix, A=a, scale=config.scale_of(path)),
                                   base_model=config.base_model))
    return weights


def _merged(base: LayerWeight, delta: LowRankFactors) -> np.ndarray:
    """W₀ + ΔW in the base weight's stored orientation (Conv1D and embedding tables store ΔWᵀ)."""
    w0 = as_float64(base.tensor)
    dense = delta.dense()
    if base.kind in (HF_CONV1D, EMBEDDING):
        dense = dense.T
    if dense.shape != w0.shape:
        raise CheckpointError(f"adapter ΔW of {base.name} is {dense.shape} but the base weight is {w0.shape}: "
                              "the adapter was not made for this base model")
    return w0 + dense


def with_base(deltas: list[LayerWeight], base_weights: Iterable[LayerWeight], base_id: str) -> Iterator[LayerWeight]:
    """Base weights as they stream, each adapted one followed by its ``adapter_delta`` and ``merged`` weights.

    Modules pair by ``finetune.base_lookup``'s rule; adapter modules the base does not have come last,
    as ``adapter_delta`` weights only.
    """
    from ww_ray.zoos.finetune import base_lookup

    by_name = {d.name: d for d in deltas}
    lookup = base_lookup(by_name)          # base layer name -> adapter module path (the rule is symmetric)
    paired: set[str] = set()
    last = -1
    for weight in base_weights:
        last = max(last, weight.index)
        yield replace(weight, role=BASE, base_model=base_id)
        path = lookup(weight.name)
        if path is not None:
            paired.add(path)
            delta = by_name[path]
            yield replace(delta, index=weight.index, name=weight.name, kind=weight.kind, base_model=base_id)
            yield replace(weight, role=MERGED, base_model=base_id, tensor=_merged(weight, delta.tensor))
    for path, delta in by_name.items():
        if path not in paired:
            last += 1
            log.warning("adapter module %s has no weight in the base %s: its delta is analysed alone", path, base_id)
            yield replace(delta, index=last, base_model=base_id)


def resolve_base(folder: Path, base: Any) -> Any:
    """The base source for ``base="auto"`` (the config's ``base_model_name_or_path``), else ``base`` itself."""
    if not (isinstance(base, str) and base == "auto"):
        return base
    named = read_adapter_config(folder).base_model
    if named is None:
        return None
    local = Path(named).expanduser()
    if not local.is_absolute():
        local = folder / local
    return local if local.exists() else f"hf:{named}"


def open_adapter(folder: str | Path, base: tuple[ModelSpec, Iterable[LayerWeight]] | None = None, *,
                 source: str = "local", model_id: str | None = None,
                 allow_pickle: bool = False) -> tuple[ModelSpec, Iterator[LayerWeight]]:
    """Spec and weights of an adapter folder: its deltas, or with ``base`` (its opened spec and weights,
    ``ww_ray.zoos.source.open_adapter_source`` opens it) the base, deltas and merged weights."""
    folder = Path(folder)
    deltas = adapter_weights(folder, allow_pickle=allow_pickle)
    files = adapter_files(folder, allow_pickle)
    config = read_adapter_config(folder)
    extra: dict[str, Any] = {ADAPTER_EXTRA: True, "files": [str(f) for f in files], "peft_type": "LORA",
                             "base_model": config.base_model}
    spec = ModelSpec(source=source, model_id=model_id or folder.name, revision=checkpoint_digest(files),
                     params=sum(int(np.prod(d.tensor.B.shape)) + int(np.prod(d.tensor.A.shape)) for d in deltas),
                     uri=str(folder.resolve()), size_bytes=sum(f.stat().st_size for f in files),
                     zoo_kind="local", extra=extra)
    if base is None:
        return spec, iter(deltas)
    base_spec, base_weights = base
    base_id = config.base_model if base_spec.zoo_kind == "module" and config.base_model else base_spec.model_id
    spec = replace(spec, architecture=base_spec.architecture, extra={**extra, "base_model": base_id})
    return spec, with_base(deltas, base_weights, base_id)
