"""The Hugging Face Hub zoo: enumeration through an injected client, offline cache, safety, sizes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub.hf_api import ModelInfo
from huggingface_hub.utils import SafetensorsRepoMetadata

from tests._zoos_util import safetensors_header_metadata, make_hf_cache, tiny_gpt2
from ww_ray.config import parse_config
from ww_ray.zoos import hub
from ww_ray.errors import ModelSkipped, UnsafeIdError, ZooUnavailableError
from ww_ray.zoos.registry import enumerate_specs, load_layer_weights
from ww_ray.zoos.source import open_source

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_SHA = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"




class FakeHfApi:
    """HfApi-compatible client over local folders: {repo_id: (sha, folder, model_type)}."""

    def __init__(self, repos: dict[str, tuple[str, Path | None, str]], listing: list[str]) -> None:
        self.repos = repos
        self.listing = listing
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def list_models(self, **kwargs: Any):
        self.calls.append(("list_models", kwargs))
        for repo_id in self.listing[: kwargs.get("limit") or None]:
            sha = self.repos.get(repo_id, ("0" * 40,))[0]
            yield ModelInfo(id=repo_id, sha=sha, pipeline_tag="text-generation", library_name="transformers")

    def model_info(self, repo_id: str, revision: str | None = None, files_metadata: bool = False) -> ModelInfo:
        self.calls.append(("model_info", {"repo_id": repo_id, "revision": revision}))
        sha, folder, model_type = self.repos[repo_id]
        siblings = [{"rfilename": p.name, "size": p.stat().st_size} for p in sorted(folder.iterdir())]
        return ModelInfo(id=repo_id, sha=sha, siblings=siblings, config={"model_type": model_type},
                         pipeline_tag="text-generation", library_name="transformers")

    def get_safetensors_metadata(self, repo_id: str, revision: str | None = None) -> SafetensorsRepoMetadata:
        self.calls.append(("get_safetensors_metadata", {"repo_id": repo_id, "revision": revision}))
        folder = self.repos[repo_id][1]
        files = {p.name: safetensors_header_metadata(p) for p in sorted(folder.glob("*.safetensors"))}
        weight_map = {t: name for name, fm in files.items() for t in fm.tensors}
        return SafetensorsRepoMetadata(metadata=None, sharded=len(files) > 1, weight_map=weight_map,
                                       files_metadata=files)


@pytest.fixture()
def gpt_repos(tmp_path: Path) -> dict[str, tuple[str, Path, str]]:
    repos = {}
    for i, (name, layers) in enumerate((("openai-community/gpt2", 2), ("openai-community/gpt2-medium", 3))):
        folder = tmp_path / name.replace("/", "__")
        tiny_gpt2(n_layer=layers, seed=i).save_pretrained(folder)
        repos[name] = (f"{i + 1:040x}", folder, "gpt2")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    import torch
    torch.save(tiny_gpt2(n_layer=1).state_dict(), pickled / "pytorch_model.bin")
    (pickled / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    repos["someone/pickled-only"] = ("f" * 40, pickled, "gpt2")
    return repos


def test_enumeration_with_injected_client(gpt_repos, hub_online: None, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = ["openai-community/gpt2", "openai-community/gpt2-medium", "someone/pickled-only"]
    client = FakeHfApi(gpt_repos, listing)
    monkeypatch.setattr(hub, "make_client", lambda: client)
    config = parse_config({"zoos": [{"kind": "hub", "author": "openai-community", "library": "transformers",
                                     "pipeline_tag": "text-generation", "dataset": "WebText", "limit": 3}]})
    specs = enumerate_specs(config)
    name, kwargs = client.calls[0]
    assert name == "list_models" and kwargs["author"] == "openai-community" and kwargs["filter"] == "transformers"
    assert kwargs["sort"] == "last_modified" and kwargs["limit"] == 3 and kwargs["pipeline_tag"] == "text-generation"
    gpt2, medium, pickled = specs
    folder = gpt_repos["openai-community/gpt2"][1]
    assert (gpt2.source, gpt2.model_id, gpt2.revision) == ("hf", "openai-community/gpt2", f"{1:040x}")
    assert gpt2.architecture == "gpt2" and gpt2.dataset == "webtext" and gpt2.task == "text-generation"
    # Size and parameters come from the safetensors header, before any download.
    assert gpt2.size_bytes == (folder / "model.safetensors").stat().st_size
    model = tiny_gpt2(n_layer=2)
    assert gpt2.params == sum(p.numel() for p in model.parameters())
    assert gpt2.extra["num_layers"] == 2 + 4 * 2 and medium.extra["num_layers"] == 2 + 4 * 3
    assert gpt2.extra["allow_patterns"] == ["model.safetensors", "config.json"]
    assert "allow_pickle: true" in pickled.extra["skip_reason"]
    with pytest.raises(ModelSkipped):
        load_layer_weights(pickled)


def test_load_downloads_only_weights_and_config(gpt_repos, hub_online: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    client = FakeHfApi(gpt_repos, [])
    monkeypatch.setattr(hub, "make_client", lambda: client)
    calls = []

    def fake_snapshot_download(repo_id: str, **kwargs: Any) -> str:
        calls.append((repo_id, kwargs))
        return str(gpt_repos[repo_id][1])

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    config = parse_config({"zoos": [{"kind": "hub", "models": ["openai-community/gpt2"],
                                     "cache_dir": str(tmp_path / "cache"), "download": True}]})
    (spec,) = enumerate_specs(config)
    layers = list(load_layer_weights(spec))
    repo_id, kwargs = calls[0]
    assert repo_id == "openai-community/gpt2" and kwargs["revision"] == f"{1:040x}"
    assert kwargs["allow_patterns"] == ["model.safetensors", "config.json"]
    assert kwargs["cache_dir"] == str(tmp_path / "cache")
    assert [w.kind for w in layers] == ["embedding"] * 2 + ["hf_conv1d"] * 8
    assert layers[0].name == "transformer.wte" and layers[2].shape == (32, 96)


def test_size_cap_skips_before_download(gpt_repos, hub_online: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "make_client", lambda: FakeHfApi(gpt_repos, []))
    config = parse_config({"zoos": [{"kind": "hub", "models": ["openai-community/gpt2"], "max_size": "10KB"}]})
    (spec,) = enumerate_specs(config)
    with pytest.raises(ModelSkipped, match="above this zoo's max_size of 10.0 KB"):
        load_layer_weights(spec)


def test_minilm_offline_from_local_cache(minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        hub_offline: None) -> None:
    cache = tmp_path / "hub-cache"
    make_hf_cache(cache, MINILM, minilm_dir, MINILM_SHA, ["config.json", "model.safetensors"])
    monkeypatch.setattr(hub, "make_client", lambda: pytest.fail("no Hub call may happen offline"))
    config = parse_config({"zoos": [{"kind": "hub", "models": [MINILM, "nobody/not-cached"],
                                     "cache_dir": str(cache), "dataset": "sentence-pairs"}]})
    minilm, missing = enumerate_specs(config)
    assert (minilm.model_id, minilm.revision, minilm.architecture) == (MINILM, MINILM_SHA, "bert")
    assert minilm.size_bytes == (minilm_dir / "model.safetensors").stat().st_size
    layers = list(load_layer_weights(minilm))
    assert len(layers) == 40 and layers[0].name == "embeddings.word_embeddings" and layers[0].kind == "embedding"
    assert sum(w.kind == "linear" for w in layers) == 37
    with pytest.raises(ZooUnavailableError) as info:
        load_layer_weights(missing)
    assert "hf download nobody/not-cached" in str(info.value) and "cache_dir" in str(info.value)
    spec, uri_layers = open_source(f"hf:{MINILM}", cache_dir=str(cache))
    assert spec.revision == MINILM_SHA and len(list(uri_layers)) == 40
    with pytest.raises(ZooUnavailableError, match="HF_HUB_OFFLINE"):
        enumerate_specs(parse_config({"zoos": [{"kind": "hub", "author": "openai-community"}]}))


def test_unreachable_hub_falls_back_to_cache_or_fails_clearly(minilm_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, hub_online: None) -> None:
    class Unreachable:
        def model_info(self, *args: Any, **kwargs: Any):
            raise ConnectionError("network is unreachable")

        def list_models(self, **kwargs: Any):
            raise ConnectionError("network is unreachable")

    cache = tmp_path / "hub-cache"
    make_hf_cache(cache, MINILM, minilm_dir, MINILM_SHA, ["config.json", "model.safetensors"])
    monkeypatch.setattr(hub, "make_client", Unreachable)
    config = parse_config({"zoos": [{"kind": "hub", "models": [MINILM, "org/absent"], "cache_dir": str(cache)}]})
    cached, absent = enumerate_specs(config)
    assert cached.revision == MINILM_SHA and cached.extra["cached"] is True
    assert "network is unreachable" in absent.extra["load_error"]
    with pytest.raises(ZooUnavailableError, match="HF_HUB_OFFLINE=1"):
        enumerate_specs(parse_config({"zoos": [{"kind": "hub", "search": "bert"}]}))


@pytest.mark.parametrize("bad", ["../etc", "/abs/model", "org/name/extra", "org/na me", "org/..", "..",
                                 "org/name@../../x", "org\\name", "org/name;rm"])
def test_unsafe_repo_ids_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeIdError):
        hub.split_model_ref(bad)
    with pytest.raises(UnsafeIdError):
        open_source(f"hf:{bad}")


def test_zoo_show_reads_layers_from_headers_without_downloading(gpt_repos, hub_online: None,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import huggingface_hub

    from ww_ray.cli import main
    from ww_ray.zoos.registry import describe_layers, spec_from_uri

    monkeypatch.setattr(hub, "make_client", lambda: FakeHfApi(gpt_repos, []))
    downloads = []

    def fake_snapshot_download(repo_id: str, **kwargs: Any) -> str:
        downloads.append(repo_id)
        return str(gpt_repos[repo_id][1])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert main(["zoo", "show", "hf:openai-community/gpt2-medium"]) == 0
    from_headers = capsys.readouterr().out
    assert downloads == [] and "nothing downloaded" in from_headers
    assert main(["zoo", "show", "hf:openai-community/gpt2-medium", "--download"]) == 0
    from_weights = capsys.readouterr().out
    assert downloads == ["openai-community/gpt2-medium"] and "nothing downloaded" not in from_weights

    def layer_lines(out: str) -> list[str]:
        return [line for line in out.splitlines() if line[:5].strip().isdigit()]

    assert layer_lines(from_headers) == layer_lines(from_weights) and len(layer_lines(from_headers)) == 14

    spec = spec_from_uri("hf:openai-community/gpt2-medium")
    described = describe_layers(spec)
    loaded = list(load_layer_weights(spec, download=True))
    assert [(w.name, w.index, w.kind, w.shape, w.groups) for w in described] == \
        [(w.name, w.index, w.kind, w.shape, w.groups) for w in loaded]
    assert all(w.tensor.is_meta for w in described) and spec.extra["num_layers"] == len(loaded)
    assert described[2].kind == "hf_conv1d" and described[2].shape == (32, 96)  # GPT-2 Conv1D is (in, out)
    monkeypatch.setattr(hub, "hub_offline", lambda: True)
    assert describe_layers(spec) is None  # offline: the cache is read instead


def test_listing_cap_is_configurable_and_warns_when_reached(gpt_repos, hub_online: None,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    listing = ["openai-community/gpt2", "openai-community/gpt2-medium", "someone/pickled-only"]
    client = FakeHfApi(gpt_repos, listing)
    monkeypatch.setattr(hub, "make_client", lambda: client)
    # a name filter runs on this side, so the listing is capped by max_listed, not by limit
    capped = parse_config({"zoos": [{"kind": "hub", "author": "openai-community", "include": ["*gpt2*"],
                                     "max_listed": 2}]})
    with caplog.at_level("WARNING", logger="ww_ray.zoos.hub"):
        specs = enumerate_specs(capped)
    def last_limit() -> int:
        return [kwargs for name, kwargs in client.calls if name == "list_models"][-1]["limit"]

    assert [s.model_id for s in specs] == listing[:2] and last_limit() == 2
    assert "stopped at max_listed=2" in caplog.text
    caplog.clear()
    whole = parse_config({"zoos": [{"kind": "hub", "author": "openai-community", "include": ["*gpt2*"],
                                    "max_listed": 5}]})
    with caplog.at_level("WARNING", logger="ww_ray.zoos.hub"):
        assert len(enumerate_specs(whole)) == 2
    assert last_limit() == 5 and "max_listed" not in caplog.text
