"""Helpers for the rescan tests: an offline, HfApi-compatible Hub over models the test publishes.

``FakeHub`` keeps repos and their revisions (a commit sha, a last-commit time, a download count,
a folder with ``config.json`` and ``model.safetensors``). It answers ``list_models`` (author,
library filter, pipeline tag, search; newest first like ``sort="last_modified"``), ``model_info``
and ``get_safetensors_metadata`` with real ``huggingface_hub`` objects, read from the files'
actual safetensors headers. Publishing a revision also lays it out in a Hugging Face cache
(``models--org--name/snapshots/<sha>``), which the Ray workers read with ``HF_HUB_OFFLINE=1``.
The state is saved as JSON so a child process (the killed rescan) sees the same Hub.

Run as a script, this module is that child: ``python tests/_rescan_util.py STATE CONFIG ADDRESS
KILL_AFTER MARKER`` runs a rescan on the saved Hub and, after KILL_AFTER model commits, writes
MARKER and waits to be killed.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script (the killed-rescan child): only tests/ is on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._engine_util import write_dense_model
from tests._zoos_util import safetensors_header_metadata

import numpy as np

UTC = _dt.timezone.utc
BASE_TIME = _dt.datetime(2025, 3, 1, tzinfo=UTC)


def write_weights(folder: Path, shapes: list[tuple[int, int]], seed: int, model_type: str) -> Path:
    """``config.json`` and a ``model.safetensors`` of dense layers N(0, 1/in), seeded."""
    import torch
    from safetensors.torch import save_file

    rng = np.random.default_rng(seed)
    tensors = {f"encoder.layer.{i}.dense.weight":
               torch.from_numpy((rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32))
               for i, (rows, cols) in enumerate(shapes)}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


def write_dense_file(path: Path, shapes: list[tuple[int, int]], seed: int) -> Path:
    """One ``.safetensors`` checkpoint of dense layers N(0, 1/in), seeded (a member of a local zoo)."""
    return write_dense_model(path, shapes, seed)




class FakeHub:
    """An offline Hub: ``repos[repo_id]`` is a list of revisions, the last one current."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.cache = self.home / "hf-cache"
        self.repos: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    # ---- the test's side --------------------------------------------------------------------

    def publish(self, repo_id: str, *, hours: float, shapes: list[tuple[int, int]] | None = None,
                seed: int = 0, downloads: int = 5000, pipeline_tag: str = "feature-extraction",
                library: str = "transformers", model_type: str = "bert", folder: Path | None = None) -> str:
        """Push a revision of ``repo_id`` committed ``hours`` after BASE_TIME; returns its sha."""
        revision = len(self.repos.get(repo_id, []))
        sha = hashlib.sha1(f"{repo_id}@{revision}@{seed}".encode()).hexdigest()
        if folder is None:
            folder = write_weights(self.home / "repos" / repo_id.replace("/", "__") / sha,
                                   shapes or [(128, 64), (96, 64)], seed, model_type)
        snapshot = self.cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / sha
        snapshot.mkdir(parents=True)
        for name in ("config.json", "model.safetensors"):
            (snapshot / name).write_bytes((folder / name).read_bytes())
        refs = snapshot.parents[1] / "refs"
        refs.mkdir(exist_ok=True)
        (refs / "main").write_text(sha)
        when = BASE_TIME + _dt.timedelta(hours=hours)
        self.repos.setdefault(repo_id, []).append({
            "sha": sha, "folder": str(folder), "last_modified": when.isoformat(), "downloads": downloads,
            "pipeline_tag": pipeline_tag, "library": library, "model_type": model_type})
        return sha

    def current(self, repo_id: str) -> dict[str, Any]:
        return self.repos[repo_id][-1]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"home": str(self.home), "repos": self.repos}))

    @classmethod
    def load(cls, path: Path) -> "FakeHub":
        state = json.loads(path.read_text())
        hub = cls(Path(state["home"]))
        hub.repos = state["repos"]
        return hub

    # ---- the HfApi side ---------------------------------------------------------------------

    def _info(self, repo_id: str, rev: dict[str, Any], siblings: bool = False):
        from huggingface_hub.hf_api import ModelInfo

        extra = {}
        if siblings:
            folder = Path(rev["folder"])
            extra["siblings"] = [{"rfilename": p.name, "size": p.stat().st_size} for p in sorted(folder.iterdir())]
        stamp = _dt.datetime.fromisoformat(rev["last_modified"]).strftime("%Y-%m-%dT%H:%M:%S.000Z")  # the Hub's format
        return ModelInfo(id=repo_id, sha=rev["sha"], lastModified=stamp, downloads=rev["downloads"],
                         pipeline_tag=rev["pipeline_tag"], library_name=rev["library"],
                         config={"model_type": rev["model_type"]}, author=repo_id.split("/")[0], **extra)

    def list_models(self, *, author: str | None = None, filter: Any = None, pipeline_tag: str | None = None,
                    search: str | None = None, sort: str | None = None, limit: int | None = None,
                    expand: list[str] | None = None, **kwargs: Any):
        self.calls.append(("list_models", {"author": author, "filter": filter, "pipeline_tag": pipeline_tag,
                                           "search": search, "sort": sort, "expand": expand}))
        assert sort == "last_modified", "a rescan lists newest first"
        rows = []
        for repo_id, revisions in self.repos.items():
            rev = revisions[-1]
            if author and repo_id.split("/")[0] != author:
                continue
            if pipeline_tag and rev["pipeline_tag"] != pipeline_tag:
                continue
            if filter and rev["library"] not in ([filter] if isinstance(filter, str) else list(filter)):
                continue
            if search and search.lower() not in repo_id.lower():
                continue
            rows.append((rev["last_modified"], repo_id, rev))
        rows.sort(reverse=True)
        for count, (_, repo_id, rev) in enumerate(rows):
            if limit is not None and count >= limit:
                return
            self.calls.append(("listed", {"repo_id": repo_id}))
            yield self._info(repo_id, rev)

    def _revision(self, repo_id: str, revision: str | None) -> dict[str, Any]:
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        if repo_id not in self.repos:
            raise RepositoryNotFoundError(f"{repo_id} not found")
        if revision in (None, "main"):
            return self.repos[repo_id][-1]
        for rev in self.repos[repo_id]:
            if rev["sha"] == revision:
                return rev
        raise RevisionNotFoundError(f"{repo_id}@{revision} not found")

    def model_info(self, repo_id: str, revision: str | None = None, files_metadata: bool = False, **kwargs: Any):
        self.calls.append(("model_info", {"repo_id": repo_id, "revision": revision}))
        return self._info(repo_id, self._revision(repo_id, revision), siblings=True)

    def get_safetensors_metadata(self, repo_id: str, revision: str | None = None, **kwargs: Any):
        from huggingface_hub.utils import SafetensorsRepoMetadata

        self.calls.append(("get_safetensors_metadata", {"repo_id": repo_id, "revision": revision}))
        folder = Path(self._revision(repo_id, revision)["folder"])
        files = {p.name: safetensors_header_metadata(p) for p in sorted(folder.glob("*.safetensors"))}
        weight_map = {t: name for name, fm in files.items() for t in fm.tensors}
        return SafetensorsRepoMetadata(metadata=None, sharded=len(files) > 1, weight_map=weight_map,
                                       files_metadata=files)

    def described(self) -> list[str]:
        """Repo ids whose files were looked at (``model_info``), in call order."""
        return [c[1]["repo_id"] for c in self.calls if c[0] == "get_safetensors_metadata"]


def rescan_yaml(hub: FakeHub, out: Path, rescan: dict[str, Any] | None = None, **zoo: Any) -> str:
    """A rescan config over the fake Hub; Ray workers read the weights from its cache offline."""
    import yaml

    entry = {"kind": "hub", "cache_dir": str(hub.cache), **zoo}
    return yaml.safe_dump({
        "zoos": [entry], "preset": "paper", "out": str(out),
        "ray": {"workers": 1, "max_models_in_flight": 2, "runtime_env": {"env_vars": {"HF_HUB_OFFLINE": "1"}}},
        "rescan": {"batch_size": 4, **(rescan or {})},
    })


def _child(state: str, config: str, address: str, kill_after: str, marker: str) -> None:
    """Run a rescan that stops dead (waits to be SIGKILLed) after ``kill_after`` models are committed."""
    import os
    import time

    os.environ["WW_RAY_COMMIT_BATCH"] = "1"  # each model written on its own: the kill comes after exactly kill_after
    from ww_ray.rescan import load_rescan_config, run_rescan
    from ww_ray.store.writer import ModelCommitter

    committed = []
    real_flush = ModelCommitter.flush

    def flush_then_maybe_hang(self: ModelCommitter) -> list[dict[str, Any]]:
        written = real_flush(self)
        committed.extend(row["model_id"] for row in written)
        if len(committed) >= int(kill_after):
            Path(marker).write_text("\n".join(committed))
            while True:
                time.sleep(1)
        return written

    ModelCommitter.flush = flush_then_maybe_hang
    hub = FakeHub.load(Path(state))
    run_rescan(load_rescan_config(config).with_overrides(address=address), client=hub, progress=False)

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    _child(*sys.argv[1:])
