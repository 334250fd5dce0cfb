"""Read named tensors out of checkpoint files safely and lazily.

Supported: ``.safetensors`` files (read one tensor at a time, each by a positioned read of its byte
range: ``zoos.tensor_index``), GGUF files (``zoos.gguf_file``: dequantized one tensor at a time),
PyTorch pickles ``.pt/.pth/.th/.bin`` (``torch.load(weights_only=True)``: a pickle that needs any
code outside torch's allow-list is refused before anything runs) and Hugging Face model folders
(``model.safetensors``, sharded ``model.safetensors.index.json``, and ``pytorch_model.bin`` /
its shards only when ``allow_pickle_in_folders`` is set). Every failure is a ``CheckpointError``
whose message says what the file is and what to do about it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from ww_ray.errors import CheckpointError

log = logging.getLogger(__name__)

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".th", ".bin")
GGUF_SUFFIXES = (".gguf",)
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES + GGUF_SUFFIXES
# Weight formats people keep next to checkpoints that ww_ray recognises but cannot read.
UNSUPPORTED_SUFFIXES = (".h5", ".keras", ".tflite", ".onnx", ".pb", ".ckpt", ".npz")

HF_SAFETENSORS = "model.safetensors"
HF_SAFETENSORS_INDEX = "model.safetensors.index.json"
HF_PICKLE = "pytorch_model.bin"
HF_PICKLE_INDEX = "pytorch_model.bin.index.json"
HF_CONFIG = "config.json"

# Keys under which training scripts nest the state dict, most specific first.
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net", "network",
                   "params", "weights", "state", "ema", "model_ema")
# Keys of training state that hold tensors but are not the model's weights.
_TRAINING_STATE = re.compile(r"optim|sched|scaler|grad|^opt$|lr_")
_MAX_NESTING = 3
# Prefixes left by wrappers (DataParallel / DistributedDataParallel, torch.compile).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def is_hf_folder(path: Path) -> bool:
    """True when ``path`` is a folder holding Hugging Face style weight files."""
    path = Path(path)
    return path.is_dir() and any(
        (path / name).is_file() for name in (HF_SAFETENSORS, HF_SAFETENSORS_INDEX, HF_PICKLE, HF_PICKLE_INDEX)
    )


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object (``config.json``, ``adapter_config.json``); anything else is a
    ``CheckpointError`` naming the file."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return value


def read_hf_config(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json`` as a dict ({} when absent); a broken file is a CheckpointError."""
    config_path = Path(folder) / HF_CONFIG
    return read_json_object(config_path) if config_path.is_file() else {}


def checkpoint_files(path: str | Path, *, allow_pickle_in_folders: bool = False) -> list[Path]:
    """The weight files behind ``path`` in reading order (one file, or a folder's shards).

    Raises CheckpointError when nothing readable is there.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint: {path}")
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CheckpointError(f"{path} is neither a file nor a folder")
    if (path / HF_SAFETENSORS).is_file():
        return [path / HF_SAFETENSORS]
    if (path / HF_SAFETENSORS_INDEX).is_file():
        return _shards_from_index(path, path / HF_SAFETENSORS_INDEX)
    has_pickle = (path / HF_PICKLE).is_file() or (path / HF_PICKLE_INDEX).is_file()
    if has_pickle and not allow_pickle_in_folders:
        raise CheckpointError(
            f"{path} holds only pickled weights ({HF_PICKLE}); reading them is off by default. "
            "Enable it with allow_pickle=True (config: `allow_pickle: true`); they are still loaded "
            "with torch.load(weights_only=True), or convert the folder to safetensors."
        )
    if (path / HF_PICKLE).is_file():
        return [path / HF_PICKLE]
    if (path / HF_PICKLE_INDEX).is_file():
        return _shards_from_index(path, path / HF_PICKLE_INDEX)
    if (path / HF_CONFIG).is_file():
        raise CheckpointError(
            f"{path} has {HF_CONFIG} but no weights ({HF_SAFETENSORS}, {HF_SAFETENSORS_INDEX} or {HF_PICKLE}); "
            "download the weight files into it (`hf download ORG/NAME --include '*.safetensors'`)"
        )
    raise CheckpointError(
        f"{path} is a folder without {HF_SAFETENSORS}, {HF_SAFETENSORS_INDEX} or {HF_PICKLE}; "
        "point at a checkpoint file or a Hugging Face model folder"
    )


def _shards_from_index(folder: Path, index_path: Path) -> list[Path]:
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        weight_map = index["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index_path} is not a valid shard index: {exc}") from exc
    shards: list[Path] = []
    for shard_name in dict.fromkeys(weight_map.values()):
        # Judged by name, not by where a link points: a Hugging Face cache snapshot links every file to
        # ../../blobs/<hash>, and those shards are the folder's own.
        name = Path(str(shard_name))
        if not str(shard_name) or name.is_absolute() or ".." in name.parts:
            raise CheckpointError(f"{index_path} names a shard outside its folder: {shard_name!r}")
        shard = folder / name
        if not shard.is_file():
            raise CheckpointError(f"{index_path} names a missing shard: {shard_name}")
        shards.append(shard)
    if not shards:
        raise CheckpointError(f"{index_path} lists no shards")
    return shards


def lazy_files(path: str | Path, *, allow_pickle_in_folders: bool = False) -> list[Path] | None:
    """The safetensors files behind a local checkpoint, or None when it is pickled (cannot be read lazily)."""
    files = checkpoint_files(path, allow_pickle_in_folders=allow_pickle_in_folders)
    formats = {"safetensors" if f.suffix.lower() == ".safetensors" else sniff_format(f) for f in files}
    return files if formats == {"safetensors"} else None


def sniff_format(path: Path) -> str | None:
    """``"safetensors"``, ``"gguf"`` or ``"torch"`` judged from the first bytes of a file, else None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return None
    if head[:4] == b"GGUF":
        return "gguf"
    if len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < 100_000_000:
        return "safetensors"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torch"
    return None


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return "safetensors"
    if suffix in PICKLE_SUFFIXES:
        return "torch"
    if suffix in GGUF_SUFFIXES:
        return "gguf"
    if suffix in UNSUPPORTED_SUFFIXES:
        raise CheckpointError(
            f"{path}: {suffix} weights are not supported; ww_ray reads .safetensors, .gguf, "
            f"{', '.join(PICKLE_SUFFIXES)} state dicts and Hugging Face model folders"
        )
    sniffed = sniff_format(path)
    if sniffed is None:
        raise CheckpointError(
            f"{path} is not a checkpoint: expected .safetensors, .gguf, {', '.join(PICKLE_SUFFIXES)} "
            "or a Hugging Face model folder"
        )
    return sniffed


def _iter_safetensors_files(files: list[Path], config: Mapping[str, Any] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Safetensors files (one, or a folder's shards) in forward order, each tensor one positioned read."""
    from ww_ray.zoos.tensor_index import read_in_forward_order

    yield from read_in_forward_order(files, dict(config or {}))


def load_pickle(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` (memory-mapped when the file allows it).

    A failure says what the file was found to be: empty, truncated, a zip or pickle that is corrupt,
    not a pickle at all, or a pickle refused because it needs code outside torch's allow-list.
    """
    kwargs: dict[str, Any] = {"map_location": "cpu", "weights_only": True}
    if _is_zip(path):
        kwargs["mmap"] = True
    try:
        return torch.load(str(path), **kwargs)
    except FileNotFoundError as exc:
        raise CheckpointError(f"no such checkpoint: {path}") from exc
    except Exception as exc:  # a corrupt stream can fail anywhere inside the unpickler
        raise CheckpointError(_why_unloadable(path, exc)) from exc


def _why_unloadable(path: Path, exc: BaseException) -> str:
    """What ``torch.load`` met in ``path``, judged from the error and the file's first bytes."""
    text = str(exc)
    # torch's weights-only message starts with advice about weights_only; the cause is on its own line
    detail = next((line.strip() for line in text.splitlines() if "WeightsUnpickler error" in line), _first_line(exc))
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        head = b""
    if not head:
        return f"{path} is empty (0 bytes), not a PyTorch checkpoint"
    if "Unsupported global" in text:
        return (f"refused to load {path}: it is a pickle that needs code outside torch's weights_only allow-list "
                "(a full Python object, or a payload that would run code). Nothing from it was executed. "
                f"Re-save it as a plain state dict or safetensors in a trusted environment. Detail: {detail}")
    if isinstance(exc, EOFError) or "EOF" in text or "truncated" in text.lower():
        return f"{path} is truncated: the data ends before the checkpoint does ({detail})"
    if head[:4] == b"PK\x03\x04":
        return f"{path} is a zip archive (the torch.save format) that is truncated or corrupt: {detail}"
    if head[:1] != b"\x80":
        return (f"{path} is not a PyTorch checkpoint: neither a zip archive (what torch.save writes) nor a "
                f"pickle stream (it starts with bytes {head.hex(' ')}); expected .safetensors or a torch.save file")
    return f"{path} starts like a pickle stream but is corrupt: {detail}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def find_state_dict(obj: Any, *, origin: str = "checkpoint") -> Mapping[str, Any]:
    """The mapping of tensors inside a loaded checkpoint: the top level, or the one a training script
    nested it under (``{"state_dict": ...}``, ``{"model": ...}``, ``{"step", "model_state",
    "optimizer_state"}`` ...). Known container keys win, then the mapping with the most tensors;
    optimizer, scheduler and scaler states are never taken. The key used is logged (INFO, logger
    ``ww_ray.zoos.checkpoint``): ``checkpoint['model_state']: using the state dict nested there``.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{origin} holds a {type(obj).__name__}, not a state dict")
    if _holds_tensors(obj, depth=0):
        return obj
    candidates = list(_nested_state_dicts(obj, ()))
    if candidates:
        keys, inner = min(candidates, key=lambda c: (_container_rank(c[0]), len(c[0]), -_tensor_count(c[1])))
        where = origin + "".join(f"[{k!r}]" for k in keys)
        others = [repr(k) for k in obj if k != keys[0]][:10]
        log.info("%s: using the state dict nested there (%d tensors; other top-level keys: %s)",
                 where, _tensor_count(inner), ", ".join(others) or "none")
        return inner
    top = ", ".join(repr(k) for k in list(obj)[:10])
    raise CheckpointError(f"{origin} holds no weight tensors (top-level keys: {top or 'none'})")


def _nested_state_dicts(mapping: Mapping[Any, Any], keys: tuple) -> Iterator[tuple[tuple, Mapping[str, Any]]]:
    """``(key path, mapping)`` of every nested mapping that holds tensors, outside training-state keys."""
    if len(keys) >= _MAX_NESTING:
        return
    for key, value in mapping.items():
        if not isinstance(value, Mapping) or not isinstance(key, str) or _TRAINING_STATE.search(key.lower()):
            continue
        path = (*keys, key)
        if _holds_tensors(value, depth=len(path)):
            yield path, value
        else:
            yield from _nested_state_dicts(value, path)


def _container_rank(keys: tuple) -> int:
    return min((_CONTAINER_KEYS.index(k) for k in keys if k in _CONTAINER_KEYS), default=len(_CONTAINER_KEYS))


def _tensor_count(mapping: Mapping[str, Any]) -> int:
    return sum(isinstance(v, torch.Tensor) for v in mapping.values())


def _holds_tensors(mapping: Mapping[str, Any], depth: int) -> bool:
    """True when the mapping's values are mostly tensors (not a training-state wrapper)."""
    values = list(mapping.values())
    tensors = sum(isinstance(v, torch.Tensor) for v in values)
    return tensors > 0 and tensors >= len(values) / 2


def flatten_tensors(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` pairs of a (possibly nested) state dict; non-tensor entries skipped."""
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            yield name, value
        elif isinstance(value, Mapping):
            yield from flatten_tensors(value, prefix=f"{name}.")


def strip_wrapper_prefixes(names: list[str]) -> dict[str, str]:
    """Map each name to itself without a wrapper prefix shared by every name (``module.``)."""
    mapping = {name: name for name in names}
    for prefix in _WRAPPER_PREFIXES:
        if mapping and all(new.startswith(prefix) for new in mapping.values()):
            mapping = {old: new[len(prefix):] for old, new in mapping.items()}
    return mapping


def _iter_pickle(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    state = find_state_dict(load_pickle(path), origin=str(path))
    pairs = list(flatten_tensors(state))
    renamed = strip_wrapper_prefixes([name for name, _ in pairs])
    del state
    pairs.reverse()
    while pairs:
        name, tensor = pairs.pop()
        yield renamed[name], tensor
        del tensor


def iter_state_dict(path: str | Path, *, allow_pickle_in_folders: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(name, tensor)`` for every tensor of a checkpoint file or Hugging Face folder.

    Safetensors are read lazily, one tensor at a time, in forward order (``zoos.forward_order``:
    the module order of the folder's ``config.json`` architecture, else a numeric-aware block order;
    their headers store names alphabetically). Pickles keep the saved order, which is the module's order when the
    file came from ``model.state_dict()``; ``module.`` prefixes are stripped and nested
    ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers unwrapped.

    Raises:
        CheckpointError: missing path, unknown or unsupported format, unsafe pickle, no tensors.
    """
    files = checkpoint_files(path, allow_pickle_in_folders=allow_pickle_in_folders)
    config = read_hf_config(Path(path)) if Path(path).is_dir() else {}
    if all(_format_of(f) == "safetensors" for f in files):
        yield from _iter_safetensors_files(files, config)
        return
    for file in files:
        kind = _format_of(file)
        if kind == "safetensors":
            yield from _iter_safetensors_files([file], config)
        elif kind == "gguf":
            from ww_ray.zoos.gguf_file import iter_gguf

            yield from iter_gguf(file)
        else:
            yield from _iter_pickle(file)


def tensor_shapes(path: str | Path, *, allow_pickle_in_folders: bool = False) -> list[tuple[str, tuple[int, ...], str]]:
    """``(name, shape, dtype)`` of every tensor, from safetensors headers when possible (no data read)."""
    files = checkpoint_files(path, allow_pickle_in_folders=allow_pickle_in_folders)
    out: list[tuple[str, tuple[int, ...], str]] = []
    for file in files:
        if _format_of(file) == "gguf":
            from ww_ray.zoos.gguf_file import tensor_entries

            out.extend((e.name, e.shape, e.type_name) for e in tensor_entries(file))
        elif _format_of(file) == "safetensors":
            from safetensors import safe_open

            try:
                with safe_open(str(file), framework="pt") as handle:
                    for key in handle.keys():
                        sl = handle.get_slice(key)
                        out.append((key, tuple(int(s) for s in sl.get_shape()), str(sl.get_dtype())))
            except Exception as exc:
                raise CheckpointError(f"{file} is not a readable safetensors file: {exc}") from exc
        else:
            for key, tensor in _iter_pickle(file):
                out.append((key, tuple(tensor.shape), str(tensor.dtype).replace("torch.", "")))
    if any(_format_of(f) == "safetensors" for f in files):
        from ww_ray.zoos.forward_order import forward_order

        rank = {name: i for i, name in enumerate(forward_order(
            [name for name, _, _ in out], read_hf_config(Path(path)) if Path(path).is_dir() else None))}
        out.sort(key=lambda item: rank[item[0]])
    return out


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_digest(files: list[Path]) -> str:
    """Revision of local weights: the file's SHA-256, or for several files the SHA-256 of
    ``"<name> <sha256>\\n"`` lines in name order (so shards renamed together keep their identity)."""
    if len(files) == 1:
        return file_sha256(files[0])
    lines = "".join(f"{Path(f).name} {file_sha256(Path(f))}\n" for f in sorted(files, key=lambda f: Path(f).name))
    return hashlib.sha256(lines.encode()).hexdigest()
