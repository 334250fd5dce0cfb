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

Each spec records its ``repo_kind`` (``zoos.repo_kind``: from the file listing and ``config.json``); a
quantized repo (GPTQ/AWQ/bitsandbytes ...) is skipped with its format named; a GGUF-only repo is read
from its most precise ``.gguf`` file (``zoos.gguf_file``; ``gguf_file:`` names one). The model card's
``model-index`` figures and ``base_model`` come with ``model_info``'s ``card_data`` (offline: the
cached ``README.md``, ``zoos.model_card``); a ``figures:`` CSV (``zoos.figures``) adds figures joined
on model id and revision. A repo holding a LoRA adapter (``adapter_config.json`` +
``adapter_model.safetensors``) is analysed as an adapter (``ww_ray.zoos.adapters``). ``base_model:``
(a path or URI; ``auto``: the model card's ``base_model``, or an adapter's ``base_model_name_or_path``)
analyses each model against its base.

Offline (``HF_HUB_OFFLINE=1``): explicit models resolve from the local cache (``cache_dir`` or
``HF_HUB_CACHE``); a model missing there fails with a message saying how to provide it.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import replace
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
    is_hf_folder,
    iter_state_dict,
    read_hf_config,
    tensor_shapes,
)
from ww_ray.errors import CheckpointError, UnsafeIdError, ZooUnavailableError
from ww_ray.zoos.adapters import ADAPTER_EXTRA, adapter_listing
from ww_ray.zoos.finetune import with_base_weights
from ww_ray.zoos.layers import layer_weights_from_state_dict, meta_tensors
from ww_ray.zoos.names import count_parameters, depth_order_key
from ww_ray.zoos.figures import common_dataset, read_figures_csv
from ww_ray.zoos.gguf_file import pick_gguf_file
from ww_ray.zoos.model_card import README, card_data_facts, card_facts
from ww_ray.zoos.registry import register_zoo
from ww_ray.zoos.repo_kind import RepoKind, judge, quantization_format, quantized_skip_reason
from ww_ray.zoos.source import open_path
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
        "dataset": "str", "task": "str", "max_listed": "int", "figures": "existing_path", "gguf_file": "str",
        "base_model": "model_source", "download": "bool",
    }
    description = "Hugging Face Hub models (safetensors, read lazily; GGUF; offline from a local cache)"

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

    def finish(self, spec: ModelSpec) -> ModelSpec:
        """The base class's finish, then the ``figures:`` CSV's figures for the spec's id and revision; a
        spec with no ``dataset`` takes the one dataset its figures are all on (``figures.common_dataset``)."""
        spec = super().finish(spec)
        path = self.config.options.get("figures")
        if path:
            table = getattr(self, "_figures_table", None)
            if table is None:
                table = self._figures_table = read_figures_csv(path)
            figures = table.figures_for(spec.model_id, spec.revision)
            spec = spec.with_reported_figures(figures) if figures else spec
        if spec.dataset is None and spec.reported_figures:
            spec = replace(spec, dataset=normalize_dataset(common_dataset(spec.reported_figures)))
        return spec

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
        kind = judge(siblings, config if isinstance(config, dict) else None)
        card = card_data_facts(getattr(info, "card_data", None))
        details = self._kind_details(repo_id, kind, siblings, card.base_model)
        adapter = adapter_listing(siblings)   # a LoRA adapter repo (ww_ray.zoos.adapters)
        if details:  # quantized (skipped) or gguf (one file)
            extra.update(details)
            files = patterns = [details["file_name"]] if "file_name" in details else []
            if files and getattr(siblings[files[0]], "size", None):
                size = int(siblings[files[0]].size)
        elif adapter is not None:
            files, size = adapter
            extra[ADAPTER_EXTRA] = True
            patterns = list(files)
        elif HF_SAFETENSORS in siblings or HF_SAFETENSORS_INDEX in siblings:
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
            fmt = quantization_format(config if isinstance(config, dict) else None, (n for n, _, _ in shapes))
            if fmt:  # packed-int tensor names with no quantization_config in the listing's config
                kind = RepoKind("quantized", fmt)
                extra[SKIP_REASON] = quantized_skip_reason(repo_id, fmt, card.base_model)
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
            repo_kind=kind.kind, base_model=card.base_model, reported_figures=card.figures,
            zoo_kind=self.kind, extra=extra,
        )

    def _describe_cached(self, repo_id: str, revision: str | None, why: str) -> ModelSpec:
        from huggingface_hub import try_to_load_from_cache

        found = None
        for name in (HF_CONFIG, HF_SAFETENSORS, HF_SAFETENSORS_INDEX, HF_PICKLE, README):
            hit = try_to_load_from_cache(repo_id, name, cache_dir=self.cache_dir, revision=revision)
            if isinstance(hit, str):
                found = Path(hit).parent
                break
        if found is None:
            return self._failed_spec(repo_id, revision, self._missing_message(repo_id, revision, why))
        config = read_hf_config(found)
        model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
        weights = [p for p in sorted(found.iterdir()) if p.suffix in (".safetensors", ".bin")]
        readme = found / README
        card = card_facts(readme.read_text(encoding="utf-8", errors="replace"), where=str(readme)) \
            if readme.is_file() else card_data_facts(None)
        names = [p.name for p in found.iterdir()]
        try:  # packed-int tensor names in the cached headers mark a quantized checkpoint
            names_in_headers = [n for n, _, _ in tensor_shapes(found)] if is_hf_folder(found) \
                and any(n.endswith(".safetensors") for n in names) else []
        except CheckpointError:
            names_in_headers = []   # a broken file fails when it is loaded, with the reader's message
        kind = judge(names, config, names_in_headers)
        extra: dict[str, Any] = {"model_type": model_type, "files": [p.name for p in weights], "cached": True,
                                 "allow_patterns": ["*.safetensors", "*.safetensors.index.json", HF_CONFIG]
                                 + (["*.bin", HF_PICKLE_INDEX] if self.allow_pickle else [])}
        details = self._kind_details(repo_id, kind, names, card.base_model)
        extra.update(details)
        if "file_name" in details:
            weights = [found / details["file_name"]]
            extra.update(files=[details["file_name"]], allow_patterns=[details["file_name"], HF_CONFIG])
        spec = ModelSpec(
            source=self.source, model_id=repo_id, revision=found.name if _SHA.fullmatch(found.name) else revision,
            architecture=model_type, dataset=normalize_dataset(self.config.options.get("dataset")),
            task=self.config.options.get("task"),
            uri=f"https://huggingface.co/{repo_id}/tree/{found.name}",
            size_bytes=sum(p.stat().st_size for p in weights) or None, zoo_kind=self.kind,
            repo_kind=kind.kind, base_model=card.base_model, reported_figures=card.figures, extra=extra,
        )
        return spec

    def _kind_details(self, repo_id: str, kind: RepoKind, names: Any, base_model: str | None) -> dict[str, Any]:
        """``spec.extra`` entries of the kinds read differently: quantized → the skip reason naming the
        format; gguf → ``file_name``, the one ``.gguf`` to read (``gguf_file:`` glob, else the most precise)."""
        if kind.kind == "quantized":
            return {SKIP_REASON: quantized_skip_reason(repo_id, str(kind.format), base_model)}
        if kind.kind == "gguf":
            pattern = self.config.options.get("gguf_file")
            chosen = pick_gguf_file(names, pattern)
            if chosen is None:
                return {SKIP_REASON: f"{repo_id} has no .gguf file matching gguf_file={pattern!r}"}
            return {"file_name": chosen}
        return {}

    def _failed_spec(self, repo_id: str, revision: str | None, message: str) -> ModelSpec:
        return ModelSpec(source=self.source, model_id=repo_id, revision=revision, zoo_kind=self.kind,
                         uri=f"https://huggingface.co/{repo_id}", extra={LOAD_ERROR: message})

    def describe_layers(self, spec: ModelSpec) -> list[LayerWeight] | None:
        """Layers and shapes from the safetensors headers on the Hub: a few small range requests, no
        weights downloaded. None offline, for pickled-only repos and for specs that failed."""
        files = list(spec.extra.get("files") or [])
        if hub_offline() or spec.extra.get(LOAD_ERROR) or spec.extra.get("cached") or not files \
                or spec.extra.get(ADAPTER_EXTRA) \
                or not all(f.endswith(".safetensors") for f in files):
            return None
        repo_id, _ = split_model_ref(spec.model_id)
        meta = self.client.get_safetensors_metadata(repo_id, revision=spec.revision)
        model_type = spec.extra.get("model_type")
        return list(layer_weights_from_state_dict(meta_tensors(header_entries(meta)),
                                                  model_type if isinstance(model_type, str) else None))

    # ---- loading -------------------------------------------------------------------------------

    def load(self, spec: ModelSpec) -> Iterator[LayerWeight]:
        adapter = bool(spec.extra.get(ADAPTER_EXTRA))
        gguf = spec.repo_kind == "gguf" and spec.extra.get("file_name")
        location = self._location(spec, lazy=not (adapter or gguf))
        if gguf:
            return open_path(location / str(spec.extra["file_name"]), source=spec.source, model_id=spec.model_id)[1]
        if adapter:
            from ww_ray.zoos.source import open_adapter_source

            base = self.config.options.get("base_model")
            return open_adapter_source(location, base, cache_dir=self.cache_dir, allow_pickle=self.allow_pickle)[1]
        if isinstance(location, str):  # not cached: tensors read by byte ranges from the Hub
            from ww_ray.zoos.remote import folder_config, weight_files
            from ww_ray.zoos.tensor_index import read_in_forward_order

            config = folder_config(location)
            model_type = config.get("model_type")
            items = read_in_forward_order(weight_files(location), config)
        else:
            model_type = read_hf_config(location).get("model_type")
            items = iter_state_dict(location, allow_pickle_in_folders=self.allow_pickle)
        layers = layer_weights_from_state_dict(items, model_type=model_type if isinstance(model_type, str) else None)
        base = self._base_of(spec)
        if base is None:
            return layers
        from ww_ray.zoos.source import open_source

        try:   # the base is held whole while the model streams (finetune.with_base_weights)
            options: dict[str, Any] = {"cache_dir": self.cache_dir, "allow_pickle": self.allow_pickle}
            if base.startswith(f"{self.uri_scheme}:") and self.config.options.get("download"):
                options["download"] = True   # a Hub base is read the way this zoo reads its models
            _, opened = open_source(base, **options)
            base_layers = list(opened)
        except Exception as exc:
            if self.config.options.get("base_model") != "auto":
                raise
            log.warning("%s: its card's base %s cannot be read (%s); analysed without it", spec.model_id, base,
                        _short(exc))
            return layers
        return with_base_weights(layers, base_layers, base.removeprefix(f"{self.uri_scheme}:"))

    def _base_of(self, spec: ModelSpec) -> str | None:
        """The base a (non-adapter) model is analysed against: zoo option ``base_model`` (``auto``: the card's)."""
        option = self.config.options.get("base_model")
        if not option:
            return None
        if option != "auto":
            return str(option)           # a path or a zoo URI, as given
        named = spec.base_model          # the card's base_model (zoos.model_card)
        return f"hf:{named}" if named else None

    def checkpoint_path(self, spec: ModelSpec) -> Path | str | None:
        """Where the spec's weights are read from (see ``_location``); a GGUF repo's one file; None for
        adapters and models analysed against a base (``load`` reads those)."""
        self.check_not_skipped(spec)
        if spec.extra.get(ADAPTER_EXTRA) or self._base_of(spec) is not None:
            return None
        if spec.repo_kind == "gguf" and spec.extra.get("file_name"):
            return self._location(spec, lazy=False) / str(spec.extra["file_name"])
        return self._location(spec)

    def _location(self, spec: ModelSpec, lazy: bool = True) -> Path | str:
        """The node-local snapshot folder (Hugging Face cache) when every weight file is cached there;
        else, for safetensors repos online (and ``lazy``), the revision's ``hf://org/name@sha`` URL, read
        by byte ranges through ``huggingface_hub.HfFileSystem`` (nothing downloaded whole); else
        (pickles, GGUF, adapters, ``download: true``) the snapshot downloaded into the cache."""
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
        byte_ranges = lazy and files and all(f.endswith(".safetensors") for f in files)
        if byte_ranges and not spec.extra.get("cached") and not hub_offline() and not self.config.options.get("download"):
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
