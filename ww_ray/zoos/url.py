"""The url zoo: safetensors models at URLs — ``s3://``, ``gs://``, ``hf://``, any fsspec URL — read by byte ranges.

    zoos:
      - kind: url
        models:
          - s3://bucket/models/llama-7b                                   # a Hugging Face folder
          - s3://bucket/models/bert?endpoint_override=minio:9000&scheme=http
          - gs://bucket/checkpoints/step-1000/model.safetensors           # one file

Listing reads only headers (``config.json``, the shard index, each file's safetensors header: a few
small range requests). The model id is the URL's path (``bucket/models/llama-7b``); the revision is
the SHA-256 of the files' headers and store stamps (size and modification time or ETag:
``zoos.remote.url_stamp``), since a digest of the content would mean reading all of it; size and
parameter count come from the headers. A sweep plans the shards from the headers and each worker
reads only its shard's byte ranges; ``ww_ray.analyze("s3://...")`` reads the tensors one at a time
the same way. Safetensors only (a pickle cannot be read by ranges). Credentials come from the
environment (``AWS_*``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``HF_TOKEN``), never from the config.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from ww_ray.errors import ZooError
from ww_ray.weights import LayerWeight
from ww_ray.zoos.base import Zoo
from ww_ray.zoos.registry import register_zoo
from ww_ray.zoos.spec import LOAD_ERROR, ModelSpec, normalize_dataset


@register_zoo
class UrlZoo(Zoo):
    """Models at URLs, one ``models:`` entry each."""

    kind = "url"
    options = {"models": "str_list", "dataset": "str", "task": "str"}
    required = ("models",)
    description = "safetensors models at URLs (s3://, gs://, hf://, fsspec), planned from headers, read by byte ranges"

    def default_source(self) -> str:
        return "url"

    def list_specs(self) -> list[ModelSpec]:
        return [self.describe(str(url)) for url in self.config.options.get("models") or []]

    def spec_for(self, model_id: str) -> ModelSpec:
        """The spec of one URL (``ww_ray.analyze("s3://...")``)."""
        return self.finish(self.describe(model_id))

    def describe(self, url: str) -> ModelSpec:
        """The spec of one URL from its headers; a URL that cannot be read is a failed spec, not the zoo's failure."""
        from ww_ray.zoos.remote import is_url, url_path

        if not is_url(url):
            return self._failed(url, f"{url!r} is not a URL (s3://, gs://, hf://...); use a `kind: local` zoo for "
                                     "local folders")
        try:
            files, config, index = _headers(url)
            revision = _revision(files, index)
        except Exception as exc:  # unreachable, missing, not safetensors: this model fails, the others run
            return self._failed(url, f"cannot read {url}: {exc}")
        from ww_ray.zoos.layers import guess_model_type
        from ww_ray.zoos.names import count_parameters

        model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
        model_type = model_type or guess_model_type(index)
        return ModelSpec(
            source=self.source, model_id=url_path(url), revision=revision, architecture=model_type,
            dataset=normalize_dataset(self.config.options.get("dataset")), task=self.config.options.get("task"),
            params=count_parameters((e.name, e.shape) for e in index.values()), uri=url,
            size_bytes=sum(max(e.end for e in index.values() if e.file == f) for f in files),
            zoo_kind=self.kind, extra={"url": url, "files": files, "model_type": model_type,
                                       "num_tensors": len(index)},
        )

    def _failed(self, url: str, message: str) -> ModelSpec:
        from ww_ray.zoos.remote import url_path

        model_id = url_path(url) if "://" in url else url
        return ModelSpec(source=self.source, model_id=model_id or url, uri=url, zoo_kind=self.kind,
                         extra={LOAD_ERROR: message, "files": []})

    def _checked_url(self, spec: ModelSpec) -> tuple[str, list[str], dict[str, Any], dict]:
        """The spec's URL, its files, config and index, after checking the model did not change since listing."""
        self.check_not_skipped(spec)
        if spec.extra.get(LOAD_ERROR):
            raise ZooError(str(spec.extra[LOAD_ERROR]))
        url = str(spec.extra.get("url") or spec.uri or "")
        if url not in [str(u) for u in self.config.options.get("models") or []]:
            raise ZooError(f"{url!r} is not one of this url zoo's models")
        files, config, index = _headers(url)
        if spec.revision and _revision(files, index) != spec.revision:
            raise ZooError(f"{url} changed since it was listed; list the zoo again")
        return url, files, config, index

    def load(self, spec: ModelSpec) -> Iterator[LayerWeight]:
        from ww_ray.zoos.layers import layer_weights_from_state_dict
        from ww_ray.zoos.tensor_index import read_in_forward_order

        _, files, config, _ = self._checked_url(spec)
        return layer_weights_from_state_dict(read_in_forward_order(files, config), model_type=spec.architecture)

    def checkpoint_path(self, spec: ModelSpec) -> str:
        """The model's URL: the engine plans its shards from the headers there (``engine.shard_plan``)."""
        return self._checked_url(spec)[0]


def _headers(url: str) -> tuple[list[str], dict[str, Any], dict]:
    from ww_ray.zoos.remote import folder_config, weight_files
    from ww_ray.zoos.tensor_index import checkpoint_index

    files = weight_files(url)
    return files, folder_config(url), checkpoint_index(files)


def _revision(files: list[str], index: dict) -> str:
    """SHA-256 of every file's store stamp and every tensor's header entry."""
    from ww_ray.zoos.remote import url_stamp

    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.rsplit('/', 1)[-1].split('?')[0]}\t{url_stamp(file)}\n".encode())
    for name in sorted(index):
        e = index[name]
        digest.update(json.dumps([e.file.split("?")[0].rsplit("/", 1)[-1], name, list(e.shape), e.dtype,
                                  e.begin, e.end]).encode())
    return digest.hexdigest()
