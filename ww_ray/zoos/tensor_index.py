"""A checkpoint's tensor index (names, shapes, dtypes, files) and lazy reads of a few named tensors.

Safetensors files begin with a JSON header that gives every tensor's name, dtype, shape and byte
range, so a model's layers can be planned — and split into shards of tensor names — without
reading a single weight. ``read_tensors`` then reads just the tensors it is asked for, in their
stored dtype (bf16/fp16 stay half-size until the spectral code widens them): a local file (or a
node-local Hugging Face cache) through ``safetensors.safe_open``, a remote URL (``hf://``,
``s3://``, anything fsspec opens) by byte ranges, which is how a worker with no copy of the model
reads its shard straight from the Hub or an object store.

Setting ``WW_RAY_TENSOR_READ_LOG`` to a folder makes every process append the tensors it reads to
``<folder>/<pid>.log`` (an audit of who reads what: tests check that each worker reads only its
shard and the driver nothing).

    >>> import tempfile, torch, safetensors.torch
    >>> path = tempfile.mkdtemp() + "/m.safetensors"
    >>> safetensors.torch.save_file({"b.weight": torch.ones(3, 2, dtype=torch.bfloat16),
    ...                              "a.weight": torch.zeros(4, 5)}, path)
    >>> [(e.name, e.shape, e.dtype) for e in tensor_index(path)]
    [('a.weight', (4, 5), 'F32'), ('b.weight', (3, 2), 'BF16')]
    >>> [(name, t.dtype) for name, t in read_tensors([tensor_index(path)[1]])]
    [('b.weight', torch.bfloat16)]
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ww_ray.zoos.checkpoint import CheckpointError, checkpoint_files, sniff_format

READ_LOG_ENV = "WW_RAY_TENSOR_READ_LOG"
#: Largest safetensors header accepted (the format's own limit is 100 MB).
_MAX_HEADER_BYTES = 100_000_000

# safetensors header dtype → torch dtype (format spec, https://github.com/huggingface/safetensors).
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
if hasattr(torch, "float8_e4m3fn"):
    _DTYPES.update(F8_E4M3=torch.float8_e4m3fn, F8_E5M2=torch.float8_e5m2)


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: its file (a local path or a URL), name, shape, dtype and byte range."""

    file: str
    name: str
    shape: tuple[int, ...]
    dtype: str                     # safetensors header name: F32, BF16, F16 ...
    begin: int                     # byte offsets inside the file's data section
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


def is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def lazy_files(path: str | Path, *, allow_pickle_in_folders: bool = False) -> list[Path] | None:
    """The safetensors files behind a local checkpoint, or None when it is pickled (cannot be read lazily)."""
    files = checkpoint_files(path, allow_pickle_in_folders=allow_pickle_in_folders)
    formats = {"safetensors" if f.suffix.lower() == ".safetensors" else sniff_format(f) for f in files}
    return files if formats == {"safetensors"} else None


def tensor_index(location: str | Path) -> list[TensorEntry]:
    """Every tensor of one safetensors file (local path or URL), from its header only, by name."""
    location = str(location)
    try:
        with _open(location) as handle:
            head = handle.read(8)
            if len(head) != 8:
                raise CheckpointError(f"{location} is too short to be a safetensors file")
            (length,) = struct.unpack("<Q", head)
            if length > _MAX_HEADER_BYTES:
                raise CheckpointError(f"{location}: safetensors header of {length} bytes is not plausible")
            header = json.loads(handle.read(length))
    except CheckpointError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{location} is not a readable safetensors file: {exc}") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{location}: safetensors header is not a JSON object")
    data_start = 8 + length
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(v) for v in info["data_offsets"])
            entries.append(TensorEntry(file=location, name=name, shape=tuple(int(s) for s in info["shape"]),
                                       dtype=str(info["dtype"]), begin=data_start + begin, end=data_start + end))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{location}: bad header entry for {name!r}: {exc}") from exc
    return sorted(entries, key=lambda e: e.name)


def checkpoint_index(files: Iterable[str | Path]) -> dict[str, TensorEntry]:
    """Name → entry over a checkpoint's safetensors files (the first file naming a tensor wins)."""
    index: dict[str, TensorEntry] = {}
    for file in files:
        for entry in tensor_index(file):
            index.setdefault(entry.name, entry)
    if not index:
        raise CheckpointError(f"{', '.join(str(f) for f in files)} holds no tensors")
    return index


def read_tensors(entries: Iterable[TensorEntry]) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` for each entry, in the order given, in the stored dtype; each file opened once."""
    from safetensors import safe_open

    handles: dict[str, object] = {}
    try:
        for entry in entries:
            _log_read(entry)
            if is_url(entry.file):
                yield entry.name, _read_range(entry)
                continue
            handle = handles.get(entry.file)
            if handle is None:
                local = entry.file[len("file://"):] if entry.file.startswith("file://") else entry.file
                try:
                    handle = safe_open(local, framework="pt").__enter__()
                except Exception as exc:
                    raise CheckpointError(f"{local} is not a readable safetensors file on this node: {exc}") from exc
                handles[entry.file] = handle
            try:
                tensor = handle.get_tensor(entry.name)
            except Exception as exc:
                raise CheckpointError(f"{entry.file}: cannot read tensor {entry.name!r}: {exc}") from exc
            yield entry.name, tensor
            del tensor
    finally:
        for handle in handles.values():
            handle.__exit__(None, None, None)


def _read_range(entry: TensorEntry) -> torch.Tensor:
    dtype = _DTYPES.get(entry.dtype)
    if dtype is None:
        raise CheckpointError(f"{entry.file}: tensor {entry.name!r} has unsupported dtype {entry.dtype}")
    with _open(entry.file) as handle:
        handle.seek(entry.begin)
        data = handle.read(entry.nbytes)
    if len(data) != entry.nbytes:
        raise CheckpointError(f"{entry.file}: tensor {entry.name!r} is truncated")
    if not data:
        return torch.empty(entry.shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=dtype).reshape(entry.shape)


def _open(location: str):
    if not is_url(location):
        return open(location[len("file://"):] if location.startswith("file://") else location, "rb")
    import fsspec  # hf:// comes from huggingface_hub's HfFileSystem, s3:// from s3fs (fsspec registry)

    return fsspec.open(location, "rb").open()


def _log_read(entry: TensorEntry) -> None:
    folder = os.environ.get(READ_LOG_ENV)
    if not folder:
        return
    with open(os.path.join(folder, f"{os.getpid()}.log"), "a", encoding="utf-8") as log:
        log.write(f"{entry.file}\t{entry.name}\n")
