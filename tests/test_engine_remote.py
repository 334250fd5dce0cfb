"""Models read by byte ranges where they live: a sharded Llama-like model on S3 (moto's S3 server on
127.0.0.1) swept on a real local Ray, and a Hub model that is not in the local cache read through
``hf://`` URLs (an fsspec filesystem registered for ``hf`` over local files: no network).

``WW_RAY_TENSOR_READ_LOG`` (set before Ray starts, so the workers inherit it) records which process
reads which tensor, by file and byte range.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests._engine_util import local_ray_cluster
from tests._store_util import S3_BUCKET, moto_s3_server
from tests.test_engine_large import LLAMA, _assert_rows_equal_analyze, write_hf_folder
from ww_ray.config import parse_config
from ww_ray.engine import run_config
from ww_ray.engine.shard_plan import plan_model, read_layer_weights
from ww_ray.zoos.tensor_index import READ_LOG_ENV

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _reads(folder: Path) -> dict[int, list[tuple[str, str, int, int]]]:
    out: dict[int, list[tuple[str, str, int, int]]] = {}
    for log in folder.glob("*.log"):
        rows = [line.split("\t") for line in log.read_text().splitlines()]
        out[int(log.stem)] = [(file, name, int(begin), int(end)) for file, name, begin, end in rows]
    return out


@pytest.fixture(scope="module")
def read_log(tmp_path_factory):
    return tmp_path_factory.mktemp("reads")


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3_server() as endpoint:  # dummy AWS credentials in os.environ from here on
        yield endpoint


@pytest.fixture(scope="module")
def s3_ray(s3_endpoint, read_log):
    with local_ray_cluster(loads=2, env={READ_LOG_ENV: str(read_log)}) as ray:  # workers inherit the log
        yield ray                                                                # and the S3 credentials


@pytest.fixture(scope="module")
def llama_on_s3(s3_endpoint, tmp_path_factory) -> tuple[Path, str]:
    """The local copy and the s3:// URL of a 2-shard Llama-like bf16 model."""
    import pyarrow.fs as pafs

    local = write_hf_folder(tmp_path_factory.mktemp("local") / "llama-like", LLAMA, seed=1, shards=2)
    s3 = pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", region="us-east-1")
    for file in sorted(local.iterdir()):
        with s3.open_output_stream(f"{S3_BUCKET}/models/llama-like/{file.name}") as out:
            out.write(file.read_bytes())
    return local, f"s3://{S3_BUCKET}/models/llama-like?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"


def test_s3_model_is_planned_from_headers_and_swept_by_byte_ranges(llama_on_s3, s3_ray, read_log, tmp_path):
    import ww_ray

    local, url = llama_on_s3
    for log in read_log.glob("*.log"):
        log.unlink()
    shards = plan_model(url, workers=2)
    assert _reads(read_log) == {}                          # planning read headers only, no tensor
    assert len(shards) >= 2
    planned = [{(layer.entry.file, layer.entry.name, layer.entry.begin, layer.entry.end) for layer in shard.layers}
               for shard in shards]
    assert len(set().union(*planned)) == 12 * 7 + 2
    assert {Path(f.split("?")[0]).name for p in planned for f, _, _, _ in p} == {
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    assert all(f.startswith(f"s3://{S3_BUCKET}/models/llama-like/") for p in planned for f, _, _, _ in p)

    config = parse_config({"zoos": [{"kind": "url", "models": [url]}], "out": str(tmp_path / "out"),
                           "ray": {"workers": 2, "max_models_in_flight": 1}}, base_dir=tmp_path)
    result = run_config(config, progress=False)
    assert result.counts == {"ok": 1, "failed": 0, "skipped": 0}, [r.error for r in result.results]
    reads = _reads(read_log)
    assert os.getpid() not in reads                        # the driver read no tensor
    every = [entry for entries in reads.values() for entry in entries]
    assert len(every) == len(set(every))                   # no byte range read twice
    assert set(every) == set().union(*planned)             # exactly the planned tensors' byte ranges
    for entries in reads.values():                         # each worker read whole shards, nothing else
        got = set(entries)
        assert got == set().union(*[p for p in planned if p & got])
    assert 1 <= len(reads) <= result.pool["workers"]       # spectral workers read, nobody else
    reference = ww_ray.analyze(str(local))
    _assert_rows_equal_analyze(tmp_path / "out", f"{S3_BUCKET}/models/llama-like", reference)

    # In-process, the same URL is read tensor by tensor through the same byte ranges.
    in_process = ww_ray.analyze(url)
    assert (in_process["status"] == "ok").all() and in_process["layer_name"].tolist() == reference["layer_name"].tolist()
    assert in_process["alpha"].tolist() == pytest.approx(reference["alpha"].tolist(), rel=1e-9)


def test_missing_s3_model_is_a_failed_row_not_a_crash(s3_endpoint, s3_ray, tmp_path):
    url = f"s3://{S3_BUCKET}/models/nothing-here?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    config = parse_config({"zoos": [{"kind": "url", "models": [url]}], "out": str(tmp_path / "out"),
                           "ray": {"workers": 1, "max_models_in_flight": 1}}, base_dir=tmp_path)
    result = run_config(config, progress=False)
    (model,) = result.results
    assert model.status == "failed" and "neither model.safetensors.index.json nor model.safetensors" in model.error


# ---- the Hub, not cached: hf:// byte ranges ---------------------------------------------------------

class LocalHubFileSystem:
    """An fsspec filesystem for ``hf://org/name@sha/file`` over local folders; records every byte range read."""

    repos: dict[str, Path] = {}
    reads: list[tuple[str, int, int]] = []

    @classmethod
    def make(cls):
        from fsspec.spec import AbstractFileSystem

        class _Fs(AbstractFileSystem):
            protocol = "hf"

            def _local(self, path: str) -> Path:
                repo, _, rest = self._strip_protocol(path).partition("@")
                revision, _, name = rest.partition("/")
                assert revision, f"hf:// path without a revision: {path}"
                return cls.repos[repo] / name

            def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
                local = self._local(path)
                if not local.is_file():
                    raise FileNotFoundError(path)
                return {"name": path, "size": local.stat().st_size, "type": "file"}

            def _open(self, path: str, mode: str = "rb", **kwargs: Any):
                return _RecordingFile(self._local(path), cls.reads)

        return _Fs


class _RecordingFile:
    def __init__(self, path: Path, reads: list) -> None:
        self._file = open(path, "rb")
        self._name = path.name
        self._reads = reads

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        at = self._file.tell()
        data = self._file.read(size)
        self._reads.append((self._name, at, len(data)))
        return data

    def readinto(self, buffer) -> int:
        at = self._file.tell()
        got = self._file.readinto(buffer)
        self._reads.append((self._name, at, got))
        return got

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def test_hub_model_not_cached_is_read_by_byte_ranges_through_hf_urls(hub_online, monkeypatch, tmp_path):
    import huggingface_hub
    from fsspec.registry import _registry as fsspec_registry  # what fsspec.open('hf://...') resolves

    import ww_ray
    from tests.test_zoos_hub import FakeHfApi
    from ww_ray.api import analyze_weights
    from ww_ray.spectral.presets import resolve_options
    from ww_ray.zoos import hub
    from ww_ray.zoos.registry import enumerate_specs, zoo_of_spec

    repo, sha = "someone/llama-like", "a" * 40
    folder = write_hf_folder(tmp_path / "repo", LLAMA, seed=4, shards=2)
    monkeypatch.setattr(hub, "make_client", lambda: FakeHfApi({repo: (sha, folder, "llama")}, []))

    def no_download(*args: Any, **kwargs: Any):
        raise AssertionError("the model was downloaded instead of read by byte ranges")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    monkeypatch.setattr(LocalHubFileSystem, "repos", {repo: folder})
    monkeypatch.setattr(LocalHubFileSystem, "reads", [])
    monkeypatch.setitem(fsspec_registry, "hf", LocalHubFileSystem.make())

    config = parse_config({"zoos": [{"kind": "hub", "models": [repo], "cache_dir": str(tmp_path / "cache")}]})
    (spec,) = enumerate_specs(config)
    location = zoo_of_spec(spec).checkpoint_path(spec)
    assert location == f"hf://{repo}@{sha}"
    shards = plan_model(location, workers=2)
    assert len(shards) >= 2
    sizes = {p.name: p.stat().st_size for p in folder.glob("*.safetensors")}
    options = resolve_options("paper")
    rows = []
    for shard in shards:
        LocalHubFileSystem.reads.clear()
        rows += analyze_weights(read_layer_weights(shard), options)
        tensor_bytes = sum(n for name, _, n in LocalHubFileSystem.reads if name.endswith(".safetensors"))
        assert tensor_bytes == shard.nbytes              # exactly the shard's byte ranges
        assert all(n < sizes[name] for name, _, n in LocalHubFileSystem.reads if name in sizes)  # never a whole file
    reference = ww_ray.analyze(str(folder))
    rows.sort(key=lambda r: r["layer_index"])
    assert [r["layer_name"] for r in rows] == reference["layer_name"].tolist()
    assert [r["alpha"] for r in rows] == pytest.approx(reference["alpha"].tolist(), rel=1e-9)
    assert [r["log_norm"] for r in rows] == pytest.approx(reference["log_norm"].tolist(), rel=1e-9)

    # ww_ray.analyze("hf:...") on a model not in the cache reads the same way, nothing downloaded.
    frame = ww_ray.analyze(f"hf:{repo}", zoo_options={"cache_dir": str(tmp_path / "cache")})
    assert frame["layer_name"].tolist() == reference["layer_name"].tolist()
    assert frame["alpha"].tolist() == pytest.approx(reference["alpha"].tolist(), rel=1e-9)


def test_hub_model_in_the_cache_is_read_from_the_cache(hub_online, monkeypatch, tmp_path):
    import huggingface_hub
    from fsspec.registry import _registry as fsspec_registry  # what fsspec.open('hf://...') resolves

    from tests._zoos_util import make_hf_cache
    from tests.test_zoos_hub import FakeHfApi
    from ww_ray.zoos import hub
    from ww_ray.zoos.registry import enumerate_specs, zoo_of_spec

    repo, sha = "someone/llama-cached", "b" * 40
    folder = write_hf_folder(tmp_path / "repo", LLAMA, seed=5, shards=2)
    names = sorted(p.name for p in folder.iterdir())
    snapshot = make_hf_cache(tmp_path / "cache", repo, folder, sha, names)
    monkeypatch.setattr(hub, "make_client", lambda: FakeHfApi({repo: (sha, folder, "llama")}, []))
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("no download expected")))

    class Unreachable:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("a cached model must not be read through hf://")

    monkeypatch.setitem(fsspec_registry, "hf", Unreachable)
    config = parse_config({"zoos": [{"kind": "hub", "models": [repo], "cache_dir": str(tmp_path / "cache")}]})
    (spec,) = enumerate_specs(config)
    location = zoo_of_spec(spec).checkpoint_path(spec)
    assert Path(location) == snapshot
    shards = plan_model(location, workers=2)
    assert {Path(layer.entry.file).parent for s in shards for layer in s.layers} == {snapshot}


def test_url_zoo_lists_from_headers_and_notices_a_changed_model(s3_endpoint, tmp_path):
    import pyarrow.fs as pafs

    from ww_ray.errors import ZooError
    from ww_ray.zoos.registry import enumerate_specs, zoo_of_spec

    local = write_hf_folder(tmp_path / "small", LLAMA, seed=6)
    s3 = pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", region="us-east-1")
    for file in sorted(local.iterdir()):
        with s3.open_output_stream(f"{S3_BUCKET}/models/small/{file.name}") as out:
            out.write(file.read_bytes())
    url = f"s3://{S3_BUCKET}/models/small?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    config = parse_config({"zoos": [{"kind": "url", "models": [url]}]})
    (spec,) = enumerate_specs(config)
    assert (spec.source, spec.model_id, spec.architecture) == ("url", f"{S3_BUCKET}/models/small", "llama")
    assert spec.size_bytes == (local / "model.safetensors").stat().st_size
    assert spec.params == sum(e.numel() for e in _tensors(local / "model.safetensors"))
    assert enumerate_specs(config)[0].revision == spec.revision          # the same model lists the same
    assert zoo_of_spec(spec).checkpoint_path(spec) == url
    other = write_hf_folder(tmp_path / "other", LLAMA, seed=7)   # same shapes, same header, other weights
    time.sleep(1.1)                                              # S3 modification times are in seconds
    with s3.open_output_stream(f"{S3_BUCKET}/models/small/model.safetensors") as out:   # replaced in place
        out.write((other / "model.safetensors").read_bytes())
    with pytest.raises(ZooError, match="changed since it was listed"):
        zoo_of_spec(spec).checkpoint_path(spec)


def _tensors(path: Path):
    from safetensors.torch import load_file

    return load_file(str(path)).values()
