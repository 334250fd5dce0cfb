"""The dataset root on non-local pyarrow filesystems, as a rescan uses it (no Ray here).

Two offline stand-ins for object storage: pyarrow's own in-memory ``mock://`` filesystem, reached
through ``resolve_root`` like ``s3://``/``gs://`` URIs are, and an fsspec in-memory filesystem
wrapped by ``pyarrow.fs.PyFileSystem(FSSpecHandler(...))``. A write that dies half way leaves no
visible file; watermarks, resume keys and reads work the same as on a local disk.
"""
from __future__ import annotations

import datetime as dt

import pyarrow.fs as pafs
import pytest

from ww_ray.rescan.history import read_history
from ww_ray.rescan.watermark import previous_watermarks
from ww_ray.store import StoreRoot, commit_model, new_run_id, read_manifests, read_table, resolve_root, write_manifest
from ww_ray.store.paths import atomic_write


def _memory_root(name: str) -> StoreRoot:
    import fsspec

    memory = fsspec.filesystem("memory")
    if memory.exists(f"/{name}"):
        memory.rm(f"/{name}", recursive=True)
    return StoreRoot(pafs.PyFileSystem(pafs.FSSpecHandler(memory)), f"/{name}", f"memory://{name}")


def _model(run_id: str, model_id: str, revision: str, status: str = "ok") -> dict:
    return {"source": "hf", "model_id": model_id, "revision": revision, "run_id": run_id, "status": status,
            "dataset": "webtext", "architecture": "gpt2", "preset": "paper", "analyzer_version": "v1",
            "alpha": 3.5, "num_layers": 1}


def _files(root: StoreRoot) -> list[pafs.FileInfo]:
    infos = root.filesystem.get_file_info(pafs.FileSelector(root.path, recursive=True, allow_not_found=True))
    return [i for i in infos if i.type == pafs.FileType.File]


@pytest.mark.parametrize("make_root", [lambda: resolve_root("mock:///ww-remote"), lambda: _memory_root("ww-remote")],
                         ids=["pyarrow-mock-uri", "fsspec-memory"])
def test_history_watermarks_and_reads_on_a_non_local_root(make_root):
    root = make_root()
    assert not root.is_local
    run = new_run_id()
    layer = {"layer_index": 0, "layer_name": "h.0.attn.c_attn", "layer_type": "linear", "N": 768, "M": 64,
             "status": "ok", "alpha": 3.5}
    commit_model(root, [layer], _model(run, "openai-community/gpt2", "a" * 40))
    commit_model(root, [], _model(run, "acme/broken", "b" * 40, status="failed"))
    write_manifest(root, run, {"kind": "rescan", "status": "completed",
                               "watermarks": {"fp": {"watermark": "2025-03-01T02:00:00+00:00",
                                                     "boundary": [["openai-community/gpt2", "a" * 40]]}}})
    history = read_history(root, "v1", "paper")
    assert history.done == {("hf", "openai-community/gpt2", "a" * 40)}
    assert history.failures == {("hf", "acme/broken", "b" * 40): 1}
    (mark,) = previous_watermarks(read_manifests(root)).values()
    assert mark.at == dt.datetime(2025, 3, 1, 2, tzinfo=dt.timezone.utc)
    assert len(read_table(root, "layers")) == 1 and len(read_table(root, "models")) == 2
    assert not [f.path for f in _files(root) if f.base_name.startswith(".")]


@pytest.mark.parametrize("make_root", [lambda: resolve_root("mock:///ww-crash"), lambda: _memory_root("ww-crash")],
                         ids=["pyarrow-mock-uri", "fsspec-memory"])
def test_a_write_that_dies_half_way_leaves_nothing_visible(make_root):
    root = make_root()
    final = root.join("runs", "run-1.json")

    def dies(stream):
        stream.write(b'{"kind": "resc')
        raise KeyboardInterrupt  # the process is stopped in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(root.filesystem, final, dies)
    assert root.filesystem.get_file_info(final).type == pafs.FileType.NotFound
    assert _files(root) == []                                   # the temporary file is gone too
    assert read_manifests(root) == []
    atomic_write(root.filesystem, final, lambda s: s.write(b'{"kind": "rescan", "status": "completed"}'))
    assert [m["kind"] for m in read_manifests(root)] == ["rescan"]
    with pytest.raises(FileExistsError):
        atomic_write(root.filesystem, final, lambda s: s.write(b"{}"))
