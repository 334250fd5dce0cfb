"""Checkpoints at a URL: open files on object stores and the Hub, read byte ranges, find a folder's weights.

Two families of URL are read, so that a worker with no copy of a model reads its shard straight
from where the model lives:

* object stores, through ``pyarrow.fs.FileSystem.from_uri`` — ``s3://``, ``gs://`` — with its
  query options (``?endpoint_override=host:port&scheme=http&region=...``) and
  credentials from the environment, exactly as a dataset root is given (``ww_ray.store.root``);
* any other fsspec URL: ``hf://org/name@revision/file`` (huggingface_hub's ``HfFileSystem``),
  ``memory://``, ``https://``, ``abfs://`` … (with the fsspec package for that protocol installed).

A folder URL holds a Hugging Face layout: ``config.json`` and ``model.safetensors``, or shards named
by ``model.safetensors.index.json``; a URL ending in ``.safetensors`` is one file. Query options
stay at the end of every file URL made from a folder URL (``join_url``).

    >>> join_url("s3://bucket/models/llama?endpoint_override=127.0.0.1:9000", "config.json")
    's3://bucket/models/llama/config.json?endpoint_override=127.0.0.1:9000'
    >>> url_path("s3://bucket/models/llama?scheme=http")
    'bucket/models/llama'
"""
from __future__ import annotations

import json
import re
import threading
from typing import IO, Any

from ww_ray.errors import CheckpointError

#: URL schemes opened with pyarrow's filesystems (the others go to fsspec).
ARROW_SCHEMES = ("s3", "gs", "gcs")
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
#: Largest JSON side file (config.json, the shard index) read from a URL.
_MAX_JSON_BYTES = 64 << 20
_SHARD_NAME = re.compile(r"[A-Za-z0-9._-]+\.safetensors")

_arrow_filesystems: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def is_url(location: object) -> bool:
    """True for a URL other than ``file://`` (a local path or ``file://`` URL is read as a local file)."""
    return isinstance(location, str) and "://" in location and not location.startswith("file://")


def _split(url: str) -> tuple[str, str, str]:
    """``(scheme, path, query)`` of a URL; path without a trailing slash."""
    scheme, _, rest = url.partition("://")
    path, _, query = rest.partition("?")
    return scheme.lower(), path.rstrip("/"), query


def url_path(url: str) -> str:
    """The URL without its scheme and query: ``bucket/key`` (used as a model id)."""
    return _split(url)[1]


def join_url(base: str, name: str) -> str:
    """``base``/``name`` with ``base``'s query options kept at the end."""
    scheme, path, query = _split(base)
    return f"{scheme}://{path}/{name}" + (f"?{query}" if query else "")


def _arrow(url: str) -> tuple[Any, str]:
    """pyarrow filesystem (one per scheme, host and options in this process) and the path inside it."""
    import pyarrow.fs as pafs

    scheme, path, query = _split(url)
    netloc = path.split("/", 1)[0]
    key = (scheme, netloc, query)
    with _lock:
        filesystem = _arrow_filesystems.get(key)
        if filesystem is None:
            filesystem, _ = pafs.FileSystem.from_uri(url)
            _arrow_filesystems[key] = filesystem
    return filesystem, path


def open_url(url: str) -> IO[bytes]:
    """A binary, seekable file object for ``url`` (close it when done); reads are byte-range requests."""
    try:
        if _split(url)[0] in ARROW_SCHEMES:
            filesystem, path = _arrow(url)
            return filesystem.open_input_file(path)
        import fsspec  # hf:// comes from huggingface_hub's HfFileSystem (fsspec's registry)

        return fsspec.open(url, "rb").open()
    except FileNotFoundError:
        raise
    except Exception as exc:
        if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
            raise FileNotFoundError(f"{url}: {exc}") from exc
        raise CheckpointError(f"cannot open {url}: {type(exc).__name__}: {exc}") from exc


def url_exists(url: str) -> bool:
    """True when ``url`` names a file."""
    try:
        if _split(url)[0] in ARROW_SCHEMES:
            import pyarrow.fs as pafs

            filesystem, path = _arrow(url)
            return filesystem.get_file_info(path).type == pafs.FileType.File
        import fsspec

        filesystem, path = fsspec.core.url_to_fs(url)
        return bool(filesystem.isfile(path))
    except FileNotFoundError:
        return False
    except Exception as exc:
        raise CheckpointError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc


def url_size(url: str) -> int:
    """Size in bytes of the file at ``url``."""
    with open_url(url) as handle:
        return int(handle.seek(0, 2))


def read_json(url: str) -> Any:
    """A small JSON file (``config.json``, the shard index) at ``url``, parsed (never executed)."""
    with open_url(url) as handle:
        data = handle.read(_MAX_JSON_BYTES + 1)
    if len(data) > _MAX_JSON_BYTES:
        raise CheckpointError(f"{url} is larger than {_MAX_JSON_BYTES >> 20} MiB; not a config or index file")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{url} is not valid JSON: {exc}") from exc


def weight_files(url: str) -> list[str]:
    """The safetensors file URLs of a folder URL (index shards, else ``model.safetensors``) or file URL."""
    if url_path(url).endswith(".safetensors"):
        return [url]
    index_url = join_url(url, SAFETENSORS_INDEX)
    if url_exists(index_url):
        index = read_json(index_url)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index_url} has no weight_map")
        names = sorted({str(name) for name in weight_map.values()})
        bad = [name for name in names if not _SHARD_NAME.fullmatch(name)]
        if bad:
            raise CheckpointError(f"{index_url} names shard files outside the folder or oddly named: {bad[:3]}")
        return [join_url(url, name) for name in names]
    single = join_url(url, SAFETENSORS_FILE)
    if url_exists(single):
        return [single]
    raise CheckpointError(f"{url} holds neither {SAFETENSORS_INDEX} nor {SAFETENSORS_FILE}")


def folder_config(url: str) -> dict[str, Any]:
    """The folder's ``config.json`` as a dict; ``{}`` for a file URL or a folder without one."""
    if url_path(url).endswith(".safetensors"):
        return {}
    config_url = join_url(url, CONFIG_FILE)
    if not url_exists(config_url):
        return {}
    config = read_json(config_url)
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_url} is not a JSON object")
    return config


def url_stamp(url: str) -> str:
    """What identifies the content at ``url`` without reading it: size plus the store's version marker
    (an object store's modification time, an fsspec ETag or Git LFS sha256 where the filesystem gives one)."""
    try:
        if _split(url)[0] in ARROW_SCHEMES:
            filesystem, path = _arrow(url)
            info = filesystem.get_file_info(path)
            mtime = info.mtime_ns if info.mtime_ns is not None else ""
            return f"{info.size}:{mtime}"
        import fsspec

        filesystem, path = fsspec.core.url_to_fs(url)
        info = filesystem.info(path)
    except Exception as exc:
        raise CheckpointError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
    lfs = info.get("lfs") if isinstance(info.get("lfs"), dict) else {}
    marker = (info.get("ETag") or info.get("etag") or lfs.get("sha256") or info.get("mtime")
              or info.get("LastModified") or info.get("last_modified") or "")
    return f"{info.get('size')}:{marker}"
