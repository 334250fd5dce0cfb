"""Helpers for the engine tests: small synthetic zoos on disk, bad members, and dataset checks."""
from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from tests._zoos_util import CodeRunningPayload
from ww_ray.engine.cluster import local_init_options, loopback_only
from ww_ray.store import read_table


@contextmanager
def local_ray_cluster(loads: int = 2, env: Mapping[str, str] | None = None) -> Iterator[object]:
    """A real local Ray of 2 CPUs on 127.0.0.1 only, as ``ww-ray sweep`` starts it, for a test module;
    ``env`` is set before it starts (its workers inherit it) and removed after."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    os.environ.update(env or {})
    try:
        with loopback_only():
            ray.init(**local_init_options(2, loads=loads), logging_level=logging.WARNING)
        yield ray
    finally:
        ray.shutdown()
        for name in env or {}:
            os.environ.pop(name, None)


def write_dense_model(path: Path, shapes: list[tuple[int, int]], seed: int, fill: float | None = None) -> Path:
    """A safetensors file of dense layers ``blocks.<i>.fc.weight`` with the given (out, in) shapes.

    Entries are N(0, 1/in) (seeded) unless ``fill`` is given (e.g. ``float("nan")``).
    """
    import torch
    from safetensors.torch import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for i, (rows, cols) in enumerate(shapes):
        values = np.full((rows, cols), fill, dtype=np.float32) if fill is not None else \
            (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
        tensors[f"blocks.{i}.fc.weight"] = torch.from_numpy(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def write_dense_zoo(folder: Path, count: int, shapes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    """``count`` synthetic models ``model-00.safetensors`` ... in ``folder``."""
    return [write_dense_model(folder / f"model-{i:02d}.safetensors", shapes, seed=seed + i) for i in range(count)]


def write_code_running_pickle(path: Path, marker: Path) -> Path:
    """A ``.pt`` whose unpickling would run code (create ``marker``); weights-only loading refuses it."""
    with open(path, "wb") as stream:
        pickle.dump({"fc.weight": CodeRunningPayload(marker)}, stream, protocol=2)
    return path


def models_frame(root: Path, latest: bool = True) -> pd.DataFrame:
    return read_table(str(root), "models", latest=latest)


def assert_one_terminal_row_each(root: Path, expected_keys: set[tuple[str, str]]) -> pd.DataFrame:
    """Every expected (source, model_id) has exactly one ``models`` row over all runs, with a terminal status."""
    raw = models_frame(root, latest=False)
    counts = raw.groupby(["source", "model_id"]).size()
    assert set(counts.index) == expected_keys, (set(counts.index) ^ expected_keys)
    assert (counts == 1).all(), counts[counts != 1]
    assert set(raw["status"]) <= {"ok", "failed", "skipped"}
    return raw
