"""Write real WeightWatcher ``get_details()`` / ``get_summary()`` files of two small seeded torch models.

Run it with the interpreter of the WeightWatcher release to record; it writes
``tests/data/ww-<version>/<model>.csv`` (``details.to_csv(path)``, what researchers do) and the
summary beside it, ``<model>.txt`` (``str(get_summary())``) for 0.2.x/0.6.x and ``<model>.json`` for 0.7.x:

    python tests/data/make_ww_fixtures.py                 # the project's venv: weightwatcher 0.7.7
    /tmp/ww064/bin/python tests/data/make_ww_fixtures.py  # a side venv with weightwatcher 0.6.4
    /tmp/ww027/bin/python tests/data/make_ww_fixtures.py  # a side venv with weightwatcher 0.2.7

The side venvs live outside the repo and see the project venv's packages through a ``.pth`` file
(torch, numpy, pandas, scikit-learn, powerlaw), with only weightwatcher installed in them.
0.2.7 cannot be installed with its own pins (it requires the deprecated ``sklearn`` PyPI package,
which refuses to build, plus ``tensorflow`` and ``keras`` 2.x); it is installed with ``--no-deps`` and
run here on torch models with two shims, neither touching a number it computes:

* ``tensorflow`` / ``keras`` stand-in modules: 0.2.7 imports them at module level and tests
  ``isinstance(layer, keras.layers.core.Dense)`` before ``isinstance(layer, nn.Linear)``; the stand-in
  classes match nothing, so only the torch branches run;
* ``np.NAN`` (removed in numpy 2) is restored as ``np.nan``.

Both 0.2.7 and 0.6.4 write ``str(LAYER_TYPE.X)`` into ``layer_type``; Python 3.11 changed
``IntFlag.__str__`` to the bare number (``4``), so the script formats ``LAYER_TYPE`` as Python ≤ 3.10
did (``LAYER_TYPE.DENSE``) and the files read as those releases wrote them at the time (the ingest
reads both forms). 0.6.4 needs ``powerlaw`` 1.5 (``pip install --no-deps powerlaw==1.5`` in its side
venv): powerlaw 2.0 no longer accepts the ``distribution=`` keyword it passes, and every fit fails.

Models (``torch.manual_seed(0)``, default torch initialisation, then a fixed rank-4 perturbation so
each ESD has a few spikes above its bulk): ``mlp`` (Linear 256→128→96→10) and ``cnn`` (Conv2d 3→16→64→64
3×3, Linear 64→10). For 0.7.x also ``cnn_slices.csv``: ``analyze(pool=False)``, one row per
conv slice, with no summary beside it.
"""
from __future__ import annotations

import enum
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 96), nn.ReLU(), nn.Linear(96, 10))
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3),
                        nn.Flatten(), nn.Linear(64, 10))
    generator = torch.Generator().manual_seed(1)
    for model in (mlp, cnn):
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                w = module.weight.data
                # a rank-4 component: a few large eigenvalues above the bulk
                u = torch.randn(w.shape[0], 4, generator=generator)
                v = torch.randn(4, w[0].numel(), generator=generator)
                scale = torch.tensor([3.0, 2.0, 1.5, 1.2]) * w.std() / np.sqrt(w[0].numel())
                w += ((u * scale) @ v).reshape(w.shape)
    return {"mlp": mlp, "cnn": cnn}


def _shim_ww027() -> None:
    if not hasattr(np, "NAN"):
        np.NAN = np.nan  # removed in numpy 2; 0.2.7 uses it for missing N/M/layer_type
    class _Never:  # matches no layer: 0.2.7 only takes its torch branches
        pass
    keras = types.ModuleType("keras")
    keras.__version__ = "stand-in (not installed)"
    keras.layers = types.SimpleNamespace(core=types.SimpleNamespace(Dense=_Never),
                                         convolutional=types.SimpleNamespace(Conv1D=_Never, Conv2D=_Never))
    keras.models = types.ModuleType("keras.models")
    keras.models.load_model = lambda path: (_ for _ in ()).throw(RuntimeError("no keras here"))
    tf = types.ModuleType("tensorflow")
    tf.__version__ = "stand-in (not installed)"
    tf.keras = keras
    sys.modules.update({"keras": keras, "keras.models": keras.models, "tensorflow": tf})


def main() -> int:
    import importlib.metadata

    version = importlib.metadata.version("weightwatcher")
    if version.startswith("0.2."):
        _shim_ww027()
    import weightwatcher as ww

    if not version.startswith("0.7."):
        ww.LAYER_TYPE.__str__ = enum.Enum.__str__  # Python <= 3.10 formatting: 'LAYER_TYPE.DENSE'
    out = HERE / f"ww-{version}"
    out.mkdir(exist_ok=True)
    for name, model in _models().items():
        watcher = ww.WeightWatcher(model=model)
        if version.startswith("0.2."):
            watcher.analyze(alphas=True, lognorms=True, spectralnorms=True, softranks=True, mp_fit=True)
        else:
            watcher.analyze()
        details = watcher.get_details()
        summary = watcher.get_summary()
        details.to_csv(out / f"{name}.csv")
        if version.startswith("0.7."):
            (out / f"{name}.json").write_text(json.dumps({k: float(v) for k, v in summary.items()}, indent=1) + "\n")
            if name == "cnn":  # one row per conv slice (pool=False), and no summary beside it
                ww.WeightWatcher(model=model).analyze(pool=False).to_csv(out / "cnn_slices.csv")
        else:
            (out / f"{name}.txt").write_text(str(summary) + "\n")
        print(f"{out.name}/{name}: {len(details)} detail rows, summary keys {sorted(summary)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
