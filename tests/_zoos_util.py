"""Helpers shared by the zoo tests: tiny GPT-2 models, a Hugging Face cache layout, unsafe pickles.

Real-weight locations come from the fixtures in conftest.py (akamaster_dir, minilm_dir, shared_models).
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from pathlib import Path


def make_hf_cache(cache: Path, repo_id: str, source_folder: Path, sha: str, files: list[str]) -> Path:
    """Lay out a Hugging Face hub cache (blobs, snapshots/<sha>, refs/main) holding ``files``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for name in files:
        blob = repo / "blobs" / f"blob-{name.replace('/', '_')}"
        shutil.copyfile(source_folder / name, blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    return snapshot


def tiny_gpt2(n_layer: int = 2, n_embd: int = 32, vocab: int = 64, positions: int = 16, seed: int = 0):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=2, vocab_size=vocab, n_positions=positions,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


class CodeRunningPayload:
    """Unpickling this would create ``marker`` (the classic pickle exploit)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_evil_pickle(path: Path, marker: Path) -> None:
    """A torch-style checkpoint whose unpickling would create ``marker``."""
    import torch

    torch.save({"state_dict": {"w": torch.zeros(2, 2)}, "payload": CodeRunningPayload(marker)}, str(path))
    assert not marker.exists()


def write_raw_evil_pickle(path: Path, marker: Path) -> None:
    """A plain (non-zip) pickle stream with the same payload."""
    with open(path, "wb") as handle:
        pickle.dump({"payload": CodeRunningPayload(marker)}, handle, protocol=2)


def safetensors_header_metadata(path: Path):
    """The real safetensors header of a file, as huggingface_hub's ``get_safetensors_metadata`` reports it."""
    from huggingface_hub.utils import SafetensorsFileMetadata, TensorInfo

    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    metadata = header.pop("__metadata__", {}) or {}
    return SafetensorsFileMetadata(metadata=metadata, tensors={
        name: TensorInfo(dtype=t["dtype"], shape=t["shape"], data_offsets=tuple(t["data_offsets"]))
        for name, t in header.items()})
