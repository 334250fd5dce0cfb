"""The Hugging Face Hub zoo: list models, size them from safetensors headers, read them lazily.

Enumeration uses ``HfApi.list_models`` (author, library, pipeline_tag, search, sort, limit) or an
explicit ``models:`` list (with name/params/dataset filters, which run on this side, at most
``max_listed`` listings are looked at, 1000 by default, with a warning when that cap is reached);
the revision is the commit sha; size, parameter count and layer shapes
come from ``get_safetensors_metadata`` before anything is downloaded. Loading reads tensors one at
a time, each by its byte range: from the node-local Hugging Face cache when the revision's weight
files are there, else — safetensors repos, online — straight from the Hub through
``huggingface_hub.HfFileSystem`` (``hf://org/name@sha``), so that a sweep's workers each fetch only
their shard's byte ranges and nothing is downloaded whole. ``download: true`` downloads the weight
files and ``config.json`` into the cache first (``snapshot_download(allow_patterns=...)``; worth it
with a ``cache_dir`` the workers share). The model is never instantiated and remote code never
runs. ``pytorch_model.bin`` is read only with ``allow_pickle: true`` (still weights-only; downloaded).

Offline (``HF_HUB_OFFLINE=1``): explicit models resolve from the local cache (``cache_dir`` or
``HF_HUB_CACHE``); a model missing there fails with a message saying how to provide it.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ww_ray.weights import LayerWeight
from ww_ray.zoos.spec import LOAD_ERROR, SKIP_REASON
from ww_ray.zoos.base import Zoo, check_safe_id
from ww_ray.zoos.checkpoint import (
    HF_CONFIG,
    HF_PICKLE,
    HF_PICKLE_INDEX,
    HF_SAFETENSORS,
    HF_SAFETENSORS_INDEX,
    iter_state_dict,
    read_hf_config,
)
from ww_ray.errors import UnsafeIdError, ZooUnavailableError
from ww_ray.zoos.layers import layer_weights_from_state_dict, meta_tensors
from ww_ray.zoos.names import count_parameters, depth_order_key
from ww_ray.zoos.registry import register_zoo
from ww_ray.zoos.spec import ModelSpec, normalize_dataset

_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")
_SHA = re.compile(r"[0-9a-f]{40}")
_MAX_LISTED = 1000  # default `max_listed`: how many listings client-side filters look at

log = logging.getLogger(__name__)


def make_client() -> Any:
    """The Hub client (an ``HfApi``); tests replace this with an HfApi-compatible fake."""
    from huggingface_hub import HfApi

    return HfApi()


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set now (huggingface_hub reads it only at import)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE")
    if env is not None:
        return env.strip().lower() in ("1", "true", "yes", "on")
    return bool(constants.HF_HUB_OFFLINE)


def split_model_ref(ref: str) -> tuple[str, str | None]:
    """``org/name@rev`` → (``org/name``, ``rev``), both checked against path escapes."""
    repo_id, _, revision = ref.partition("@")
    check_safe_id(repo_id, allow_slash=True, what="Hub repo id")
    if revision:
        if ".." in revision or not _REVISION.fullmatch(revision):
            raise UnsafeIdError(f"invalid Hub revision {revision!r}")
        return repo_id, revision
    return repo_id, None


@register_zoo
class HubZoo(Zoo):
    """Models on the Hugging Face Hub (or in a local Hugging Face cache)."""

    kind = "hub"
    uri_scheme = "hf"
    options = {
        "models": "str_list", "author": "str", "library": "str", "pipeline_tag": "str", "search": "str",
        "sort": "str", "cache_dir": "path", "revision": "str", "allow_pickle": "bool",
        "dataset": "str", "task": "str", "max_listed": "int", "download": "bool",
    }
    description = "Hugging Face Hub models (safetensors, read lazily; offline from a local cache)"

    def __init__(self, config, client: Any | None = None) -> None:
        super().__init__(config)
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client()
        return self._client

    def default_source(self) -> str:
        return "hf"

    @property
    def cache_dir(self) -> str | None:
        value = self.config.options.get("cache_dir")
        return str(value) if value else None

    @property
    def allow_pickle(self) -> bool:
        return bool(self.config.options.get("allow_pickle", False))

    # ---- enumeration -------------------------------------------------------------------------

    def list_specs(self) -> list[ModelSpec]:
        models = self.config.options.get("models")
        default_revision = self.config.options.get("revision")
        if models:
            return [self._describe_ref(str(ref), default_revision) for ref in models]
        if hub_offline():
            raise ZooUnavailableError(
                "HF_HUB_OFFLINE is set, and listing Hub models with filters needs the network; "
                "name the models explicitly with `models: [org/name, ...]` so they resolve from the local "
                "cache (cache_dir / HF_HUB_CACHE), or use a `kind: local` zoo on a folder of model folders"
            )
        opts = self.config.options
        has_client_filters = any((self.config.include, self.config.exclude, self.config.datasets,
                                  self.config.architectures, self.config.params_min, self.config.params_max))
        cap = int(opts.get("max_listed") or _MAX_LISTED)
        limit = self.config.limit if (self.config.limit and not has_client_filters) else cap
        try:
            infos = list(self.client.list_models(
                author=opts.get("author"), filter=opts.get("library"), pipeline_tag=opts.get("pipeline_tag"),
                search=opts.get("search"), sort=opts.get("sort", "last_modified"), limit=limit,
                expand=["sha", "config", "pipeline_tag", "library_name", "safetensors", "lastModified"],
            ))
        except Exception as exc:
            raise ZooUnavailableError(self._unreachable("list models on the Hub", exc)) from exc
        if limit == cap and len(infos) >= cap:
            log.warning("the Hub listing stopped at max_listed=%d models (sorted by %s): models past it are not "
                        "considered; raise `max_listed` on the hub zoo or narrow author/library/pipeline_tag/search",
                        cap, opts.get("sort", "last_modified"))
        specs = []
        for info in infos:
            try:
                repo_id, _ = split_model_ref(info.id)
            except UnsafeIdError as exc:
                specs.append(self._failed_spec(str(getattr(info, "id", "?")), None, str(exc)))
                continue
            specs.append(self.describe(repo_id, default_revision, listed=info))
        return specs

    def _describe_ref(self, ref: str, default_revision: str | None) -> ModelSpec:
        """The spec of one ``models:`` entry; a bad entry is a failed spec of its own, never the zoo's failure."""
        try:
            repo_id, revision = split_model_ref(ref)
        except UnsafeIdError as exc:
            return self._failed_spec(ref, None, f"{exc} (in the hub zoo's `models:`)")
        try:
            return self.describe(repo_id, revision or default_revision)
        except Exception as exc:  # one unresolvable repo must not take the others with it
            return self._failed_spec(repo_id, revision, f"cannot describe {ref}: {_short(exc)}")

    def spec_for(self, model_id: str) -> ModelSpec:
        repo_id, revision = split_model_ref(model_id)
        return self.finish(self.describe(repo_id, revision or self.config.options.get("revision")))

    def describe(self, repo_id: str, revision: str | None, listed: Any | None = None) -> ModelSpec:
        """The spec of one repo: from the Hub's metadata online, from the local cache offline."""
        if hub_offline():
            return self._describe_cached(repo_id, revision, why="HF_HUB_OFFLINE is set")
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            info = self.client.model_info(repo_id, revision=revision, files_metadata=True)
        except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
            return self._failed_spec(repo_id, revision, f"{repo_id}@{revision or 'main'} is not on the Hub: {exc}")
        except Exception as exc:
            return self._describe_cached(repo_id, revision, why=f"the Hub cannot be reached ({_short(exc)})")
        return self._spec_from_info(repo_id, info, listed)

    def _spec_from_info(self, repo_id: str, info: Any, listed: Any | None) -> ModelSpec:
        sha = getattr(info, "sha", None) or getattr(listed, "sha", None)
        config = getattr(info, "config", None) or getattr(listed, "config", None) or {}
        model_type = config.get("model_type") if isinstance(config, dict) else None
        siblings = {s.rfilename: s for s in (getattr(info, "siblings", None) or [])}
        extra: dict[str, Any] = {"model_type": model_type, "library": getattr(info, "library_name", None)}
        files: list[str] = []
        size: int | None = None
        params: int | None = None
        if HF_SAFETENSORS in siblings or HF_SAFETENSORS_INDEX in siblings:
            try:
                meta = self.client.get_safetensors_metadata(repo_id, revision=sha)
            except Exception as exc:
                return self._failed_spec(repo_id, sha, f"cannot read safetensors metadata of {repo_id}: {_short(exc)}")
            files = sorted(meta.files_metadata)
            shapes = header_entries(meta)
            params = count_parameters((name, shape) for name, shape, _ in shapes)
            size = sum(max((t.data_offsets[1] for t in fm.tensors.values()), default=0)
                       for fm in meta.files_metadata.values())
            if all(siblings.get(f) is not None and getattr(siblings[f], "size", None) for f in files):
                size = sum(int(siblings[f].size) for f in files)
            extra["num_tensors"] = len(shapes)
            extra["num_layers"] = sum(1 for _ in layer_weights_from_state_dict(meta_tensors(shapes), model_type))
            patterns = files + ([HF_SAFETENSORS_INDEX] if HF_SAFETENSORS_INDEX in siblings else [])
        elif HF_PICKLE in siblings or HF_PICKLE_INDEX in siblings:
            patterns = [HF_PICKLE, "pytorch_model-*.bin", HF_PICKLE_INDEX]
            files = [f for f in siblings if f == HF_PICKLE or re.fullmatch(r"pytorch_model-\d+-of-\d+\.bin", f)]
            if all(getattr(siblings[f], "size", None) for f in files):
                size = sum(int(siblings[f].size) for f in files)
            if not self.allow_pickle:
                extra[SKIP_REASON] = (
                    f"{repo_id} has only pickled weights ({HF_PICKLE}); set `allow_pickle: true` on the hub zoo "
                    "to read them (weights-only unpickling)"
                )
        else:
            extra[SKIP_REASON] = f"{repo_id} has no {HF_SAFETENSORS} or {HF_PICKLE} at its root"
            patterns = []
        extra["files"] = files
        extra["allow_patterns"] = patterns + [HF_CONFIG]
        safetensors_info = getattr(listed, "safetensors", None) or getattr(info, "safetensors", None)
        if params is None and safetensors_info is not None and getattr(safetensors_info, "total", None):
            params = int(safetensors_info.total)
        return ModelSpec(
            source=self.source, model_id=repo_id, revision=sha, architecture=model_type,
            dataset=normalize_dataset(self.config.options.get("dataset")),
            task=self.config.options.get("task") or getattr(info, "pipeline_tag", None),
            params=params, uri=f"https://huggingface.co/{repo_id}/tree/{sha or 'main'}", size_bytes=size,
            zoo_kind=self.kind, extra=extra,
        )

    def _describe_cached(self, repo_id: str, revision: str | None, why: str) -> ModelSpec:
        from huggingface_hub import try_to_load_from_cache

        found = None
        for name in (HF_CONFIG, HF_SAFETENSORS, HF_SAFETENSORS_INDEX, HF_PICKLE):
            hit = try_to_load_from_cache(repo_id, name, cache_dir=self.cache_dir, revision=revision)
            if isinstance(hit, str):
                found = Path(hit).parent
                break
        if found is None:
            return self._failed_spec(repo_id, revision, self._missing_message(repo_id, revision, why))
        config = read_hf_config(found)
        model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
        weights = [p for p in sorted(found.iterdir()) if p.suffix in (".safetensors", ".bin")]
        spec = ModelSpec(
            source=self.source, model_id=repo_id, revision=found.name if _SHA.fullmatch(found.name) else revision,
            architecture=model_type, dataset=normalize_dataset(self.config.options.get("dataset")),
            task=self.config.options.get("task"),
            uri=f"https://huggingface.co/{repo_id}/tree/{found.name}",
            size_bytes=sum(p.stat().st_size for p in weights) or None, zoo_kind=self.kind,
            extra={"model_type": model_type, "files": [p.name for p in weights], "cached": True,
                   "allow_patterns": ["*.safetensors", "*.safetensors.index.json", HF_CONFIG]
                   + (["*.bin", HF_PICKLE_INDEX] if self.allow_pickle else [])},
        )
        return spec

    def _failed_spec(self, repo_id: str, revision: str | None, message: str) -> ModelSpec:
        return ModelSpec(source=self.source, model_id=repo_id, revision=revision, zoo_kind=self.kind,
                         uri=f"https://huggingface.co/{repo_id}", extra={LOAD_ERROR: message})

    def describe_layers(self, spec: ModelSpec) -> list[LayerWeight] | None:
        """Layers and shapes from the safetensors headers on the Hub: a few small range requests, no
        weights downloaded. None offline, for pickled-only repos and for specs that failed."""
        files = list(spec.extra.get("files") or [])
        if hub_offline() or spec.extra.get(LOAD_ERROR) or spec.extra.get("cached") or not files \
                or not all(f.endswith(".safetensors") for f in files):
            return None
        repo_id, _ = split_model_ref(spec.model_id)
        meta = self.client.get_safetensors_metadata(repo_id, revision=spec.revision)
        model_type = spec.extra.get("model_type")
        return list(layer_weights_from_state_dict(meta_tensors(header_entries(meta)),
                                                  model_type if isinstance(model_type, str) else None))

    # ---- loading -------------------------------------------------------------------------------

    def load(self, spec: ModelSpec) -> Iterator[LayerWeight]:
        location = self.checkpoint_path(spec)
        if isinstance(location, str):  # not cached: tensors read by byte ranges from the Hub
            from ww_ray.zoos.remote import folder_config, weight_files
            from ww_ray.zoos.tensor_index import read_in_forward_order

            config = folder_config(location)
            model_type = config.get("model_type")
            items = read_in_forward_order(weight_files(location), config)
        else:
            model_type = read_hf_config(location).get("model_type")
            items = iter_state_dict(location, allow_pickle_in_folders=self.allow_pickle)
        return layer_weights_from_state_dict(items, model_type=model_type if isinstance(model_type, str) else None)

    def checkpoint_path(self, spec: ModelSpec) -> Path | str:
        """Where the spec's weights are read from: the node-local snapshot folder (Hugging Face cache) when
        every weight file is cached there; else, for safetensors repos online, the revision's
        ``hf://org/name@sha`` URL, read by byte ranges through ``huggingface_hub.HfFileSystem`` (nothing
        downloaded whole); else (pickles, ``download: true``) the snapshot downloaded into the cache."""
        self.check_not_skipped(spec)
        if spec.extra.get(LOAD_ERROR):
            raise ZooUnavailableError(str(spec.extra[LOAD_ERROR]))
        repo_id, _ = split_model_ref(spec.model_id)
        revision = spec.revision or self.config.options.get("revision")
        if revision:
            split_model_ref(f"{repo_id}@{revision}")
        files = [str(f) for f in spec.extra.get("files") or []]
        patterns = list(spec.extra.get("allow_patterns") or [])
        cached = self.cached_folder(repo_id, revision, files)
        if cached is not None:
            return cached
        lazy = files and all(f.endswith(".safetensors") for f in files)
        if lazy and not spec.extra.get("cached") and not hub_offline() and not self.config.options.get("download"):
            return hub_url(repo_id, revision)
        return self.download(repo_id, revision, patterns)

    def cached_folder(self, repo_id: str, revision: str | None, files: list[str]) -> Path | None:
        """The cache snapshot folder holding every one of ``files`` at ``revision``; None when one is missing."""
        from huggingface_hub import try_to_load_from_cache

        if not files:
            return None
        folders = set()
        for name in files:
            hit = try_to_load_from_cache(repo_id, name, cache_dir=self.cache_dir, revision=revision)
            if not isinstance(hit, str):
                return None
            folders.add(Path(hit).parent)
        return folders.pop() if len(folders) == 1 else None

    def download(self, repo_id: str, revision: str | None, patterns: list[str]) -> Path:
        """The local snapshot folder holding the weight files (downloaded when needed and allowed)."""
        from huggingface_hub import snapshot_download

        patterns = patterns or ["*.safetensors", "*.safetensors.index.json", HF_CONFIG]
        if not self.allow_pickle:
            patterns = [p for p in patterns if not p.endswith(".bin")]
        offline = hub_offline()
        try:
            folder = Path(snapshot_download(
                repo_id, revision=revision, cache_dir=self.cache_dir, allow_patterns=patterns,
                local_files_only=offline,
            ))
        except Exception as exc:
            why = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else _short(exc)
            raise ZooUnavailableError(self._missing_message(repo_id, revision, why)) from exc
        return folder

    def _missing_message(self, repo_id: str, revision: str | None, why: str) -> str:
        from huggingface_hub import constants

        cache = self.cache_dir or constants.HF_HUB_CACHE
        return (
            f"cannot get {repo_id}@{revision or 'main'} from the Hugging Face Hub ({why}). To work offline, "
            f"download it once where there is network (`hf download {repo_id} --include '*.safetensors' config.json`) "
            f"into the cache {cache} (set `cache_dir:` on the hub zoo or HF_HUB_CACHE to a cache that has it) and "
            "set HF_HUB_OFFLINE=1, or put the model folder in a `kind: local` zoo"
        )

    def _unreachable(self, what: str, exc: Exception) -> str:
        return (f"cannot {what} ({_short(exc)}); without network, list explicit `models:` present in the local "
                "cache and set HF_HUB_OFFLINE=1, or use a `kind: local` zoo")


def hub_url(repo_id: str, revision: str | None) -> str:
    """The ``hf://`` URL (``huggingface_hub.HfFileSystem``) of a repo's folder at a revision.

    >>> hub_url("openai-community/gpt2", "refs/pr/1")
    'hf://openai-community/gpt2@refs%2Fpr%2F1'
    """
    from urllib.parse import quote

    return f"hf://{repo_id}" + (f"@{quote(revision, safe='')}" if revision else "")


def header_entries(meta: Any) -> list[tuple[str, tuple[int, ...], str]]:
    """``(name, shape, dtype)`` of every tensor of a ``SafetensorsRepoMetadata``, in the numeric-aware
    depth order in which loading reads them."""
    entries = [(name, tuple(int(d) for d in t.shape), str(t.dtype)) for fm in meta.files_metadata.values()
               for name, t in fm.tensors.items()]
    return sorted(entries, key=lambda entry: depth_order_key(entry[0]))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
