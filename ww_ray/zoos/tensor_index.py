"""A checkpoint's tensor index (names, shapes, dtypes, files) and lazy reads of a few named tensors.

Safetensors files begin with a JSON header that gives every tensor's name, dtype, shape and byte
range, so a model's layers can be planned — and split into shards of tensor names — without
reading a single weight. ``read_tensors`` then reads just the tensors it is asked for, each by one
positioned read of its byte range into a fresh buffer, in its stored dtype (bf16/fp16 stay
half-size until the spectral code widens them, matrix by matrix). The same reads serve a local file
(or a node-local Hugging Face cache) and a URL (``s3://``, ``gs://``, ``hf://``, any fsspec URL:
``zoos.remote``), which is how a worker with no copy of the model reads its shard straight from an
object store or the Hub. No memory map: the pages of a mapped file that a process has touched count
in its resident memory, so reading a 2 GB model through ``safetensors.safe_open`` grew the reading
process by the file's size (benchmarks/large_model.py measured 3.8 GB for a 1.1B bf16 model).

Setting ``WW_RAY_TENSOR_READ_LOG`` to a folder makes every process append the tensors it reads
(file, name, byte range) to ``<folder>/<pid>.log`` (an audit of who reads what: tests check that each
worker reads only its shard's byte ranges and the driver nothing).

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
import math
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ww_ray.errors import CheckpointError
from ww_ray.zoos.remote import is_url, open_url

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
            shape = tuple(int(s) for s in info["shape"])
            dtype = str(info["dtype"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{location}: bad header entry for {name!r}: {exc}") from exc
        _check_entry(location, name, shape, dtype, begin, end)
        entries.append(TensorEntry(file=location, name=name, shape=shape, dtype=dtype,
                                   begin=data_start + begin, end=data_start + end))
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


def _check_entry(location: str, name: str, shape: tuple[int, ...], dtype: str, begin: int, end: int) -> None:
    if begin < 0 or end < begin or any(d < 0 for d in shape):
        raise CheckpointError(f"{location}: bad header entry for {name!r}: offsets {begin}..{end}, shape {shape}")
    torch_dtype = _DTYPES.get(dtype)
    if torch_dtype is not None:
        expected = math.prod(shape) * torch_dtype.itemsize
        if end - begin != expected:
            raise CheckpointError(f"{location}: tensor {name!r} of shape {shape} and dtype {dtype} needs "
                                  f"{expected} bytes, its header gives {end - begin}")


def read_in_forward_order(files: Iterable[str | Path], config: dict | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of a checkpoint's safetensors files (paths or URLs), one at a time, in forward order.

    The header lists names alphabetically ("h.10" before "h.2", mlp before self_attn); the order is
    ``zoos.forward_order``'s (the ``config.json`` architecture's module order, else a block order). The
    first file naming a tensor wins; a file without tensors gives none.
    """
    from ww_ray.zoos.forward_order import forward_order

    index: dict[str, TensorEntry] = {}
    for file in files:
        for entry in tensor_index(file):
            index.setdefault(entry.name, entry)
    yield from read_tensors(index[key] for key in forward_order(index, config or None))


def read_tensors(entries: Iterable[TensorEntry]) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` for each entry, in the order given, in the stored dtype; each file opened once."""
    handles: dict[str, object] = {}
    try:
        for entry in entries:
            _log_read(entry)
            handle = handles.get(entry.file)
            if handle is None:
                handle = handles[entry.file] = _open(entry.file)
            tensor = _read_range(handle, entry)
            yield entry.name, tensor
            del tensor
    finally:
        for handle in handles.values():
            handle.close()


def _read_range(handle, entry: TensorEntry) -> torch.Tensor:
    """One tensor: its byte range read into a fresh buffer (one request on an object store)."""
    dtype = _DTYPES.get(entry.dtype)
    if dtype is None:
        raise CheckpointError(f"{entry.file}: tensor {entry.name!r} has unsupported dtype {entry.dtype}")
    buffer = torch.empty(entry.nbytes, dtype=torch.uint8)
    view = memoryview(buffer.numpy())
    try:
        handle.seek(entry.begin)
        done = 0
        while done < entry.nbytes:
            got = handle.readinto(view[done:])
            if not got:
                break
            done += got
    except CheckpointError:
        raise
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{entry.file}: cannot read tensor {entry.name!r}: {exc}") from exc
    if done != entry.nbytes:
        raise CheckpointError(f"{entry.file}: tensor {entry.name!r} is truncated ({done} of {entry.nbytes} bytes)")
    return buffer.view(dtype).reshape(entry.shape)


def _open(location: str):
    if is_url(location):
        try:
            return open_url(location)
        except FileNotFoundError as exc:
            raise CheckpointError(f"{location} does not exist: {exc}") from exc
    local = location[len("file://"):] if location.startswith("file://") else location
    try:
        return open(local, "rb")
    except OSError as exc:
        raise CheckpointError(f"{local} is not a readable safetensors file on this node: {exc}") from exc


def _log_read(entry: TensorEntry) -> None:
    folder = os.environ.get(READ_LOG_ENV)
    if not folder:
        return
    with open(os.path.join(folder, f"{os.getpid()}.log"), "a", encoding="utf-8") as log:
        log.write(f"{entry.file}\t{entry.name}\t{entry.begin}\t{entry.end}\n")
