"""The pytorchcv zoo: ~780 models from the installed package's own ``model_metainfos.csv``.

Enumeration is offline (the table ships with the package). Each row gives the parameter count,
the weight file's SHA-1 (the spec's revision) and a 4-digit figure × 100 whose meaning depends on
the dataset: ImageNet-1K rows hold **top-5** error, CIFAR-10/100, SVHN and CUB rows top-1 error,
segmentation rows mIoU, pose rows AP and speech rows WER; ``0000`` is a placeholder.

Loading goes through pytorchcv's real ``get_model(name, pretrained=True, root=<root>)``: with
network it downloads into ``root``, with a populated root it loads offline after checking the
SHA-1. pytorchcv itself calls ``torch.load(weights_only=False)``; ww_ray forces weights-only
unpickling around the call (``TORCH_FORCE_WEIGHTS_ONLY_LOAD``), so a file that would run code is
refused. Layers come from the instantiated module, in module order.
"""
from __future__ import annotations

import csv
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ww_ray.weights import LayerWeight
from ww_ray.zoos.architectures import architecture_of
from ww_ray.zoos.spec import SKIP_REASON
from ww_ray.zoos.base import Zoo, check_safe_id
from ww_ray.errors import CheckpointError
from ww_ray.errors import ZooError, ZooUnavailableError
from ww_ray.zoos.layers import layer_weights_from_module
from ww_ray.zoos.registry import register_zoo
from ww_ray.zoos.spec import ModelSpec, figure_fields

RELEASE_URL = "https://github.com/osmr/imgclsmob/releases/download/{tag}/{file}.zip"
DEFAULT_ROOT = os.path.join("~", ".torch", "models")  # pytorchcv's own default
ROOT_ENV = "WW_RAY_PYTORCHCV_ROOT"
OFFLINE_ENV = "WW_RAY_OFFLINE"

# test_dataset code → (canonical dataset, task, what the error_value column measures)
_DATASETS = {
    "in1k": ("imagenet1k", "classification", "top5_error"),
    "cub": ("cub200", "classification", "top1_error"),
    "voc": ("voc", "segmentation", "miou"),
    "ade20k": ("ade20k", "segmentation", "miou"),
    "cs": ("cityscapes", "segmentation", "miou"),
    "cocoseg": ("cocoseg", "segmentation", "miou"),
    "coco": ("coco", "segmentation", "miou"),
    "cocohpe": ("cocohpe", "pose", "ap"),
    "mcv": ("commonvoice", "speech", "wer"),
}
_CF_SUFFIXES = {"_cifar10": "cifar10", "_cifar100": "cifar100", "_svhn": "svhn"}
# Name suffixes of rows whose test_dataset is NA.
_NAME_DATASETS = {"_cityscapes": ("cityscapes", "segmentation"), "_cifar10": ("cifar10", "classification"),
                  "_cifar100": ("cifar100", "classification"), "_widerface": ("widerface", "detection")}


@dataclass(frozen=True)
class MetaRow:
    """One row of pytorchcv's table."""

    name: str
    params: int | None
    error_value: str
    sha1: str | None
    tag: str | None
    caption: str | None
    arxiv: str | None
    test_dataset: str | None

    @property
    def has_weights(self) -> bool:
        return bool(self.sha1) and bool(self.tag)

    @property
    def file_name(self) -> str:
        """pytorchcv's weight file name: ``<name>-<error>-<sha1[:8]>.pth``."""
        return f"{self.name}-{self.error_value}-{(self.sha1 or '')[:8]}.pth"


def metainfo_path() -> Path:
    """The installed pytorchcv's ``model_metainfos.csv``."""
    try:
        from pytorchcv.models.common import model_store
    except ImportError as exc:
        raise ZooError("the pytorchcv zoo needs the pytorchcv package: pip install pytorchcv") from exc
    return Path(model_store.get_model_metainfos_file_path())


def read_metainfo(path: str | Path | None = None, *, all_rows: bool = False) -> list[MetaRow]:
    """The table's rows; for a name listed twice the last row wins, as in pytorchcv itself.

    ``all_rows=True`` keeps every row (a reader of published figures wants the one that has a value).
    """
    path = Path(path) if path is not None else metainfo_path()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_name: dict[str, MetaRow] = {}
    parsed: list[MetaRow] = []
    for row in rows:
        def field(key: str) -> str | None:
            value = (row.get(key) or "").strip()
            return None if value in ("", "NA") else value

        params = field("net_weights")
        by_name.pop(row["model_name"], None)
        parsed.append(MetaRow(
            name=row["model_name"],
            params=int(params) if params and params.isdigit() and int(params) > 0 else None,
            error_value=(row.get("error_value") or "NA").strip(),
            sha1=field("checksum"),
            tag=field("repo_release_tag"),
            caption=field("model_caption"),
            arxiv=field("arxiv_paper"),
            test_dataset=field("test_dataset"),
        ))
        by_name[row["model_name"]] = parsed[-1]
    if all_rows:
        return parsed
    order = {row["model_name"]: i for i, row in enumerate(rows)}
    return sorted(by_name.values(), key=lambda r: order[r.name])


def dataset_task_measure(row: MetaRow) -> tuple[str | None, str | None, str | None]:
    """(dataset, task, measure of error_value) for a row, from its name suffix and test_dataset."""
    name = row.name
    if row.test_dataset == "cf":
        for suffix, dataset in sorted(_CF_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
            if name.endswith(suffix):
                return dataset, "classification", "top1_error"
        return None, "classification", "top1_error"
    if row.test_dataset in _DATASETS:
        return _DATASETS[row.test_dataset]
    for suffix, (dataset, task) in sorted(_NAME_DATASETS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return dataset, task, None
    return None, None, None


def reported_figure(row: MetaRow) -> float | None:
    """The 4-digit figure as a percentage (``"0597"`` → 5.97); None for NA and the ``0000`` placeholder."""
    value = row.error_value
    if len(value) != 4 or not value.isdigit() or value == "0000":
        return None
    return int(value) / 100.0


_FORCE_LOCK = threading.Lock()


@contextmanager
def forced_weights_only() -> Iterator[None]:
    """Make every ``torch.load`` inside the block use ``weights_only=True`` (even if asked otherwise)."""
    with _FORCE_LOCK:
        saved = {k: os.environ.get(k) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
        os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
        os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _github_reachable(timeout: float) -> bool:
    try:
        with socket.create_connection(("github.com", 443), timeout=timeout):
            return True
    except OSError:
        return False


@register_zoo
class PytorchcvZoo(Zoo):
    """Models of the pytorchcv package (``osmr/imgclsmob`` weights)."""

    kind = "pytorchcv"
    uri_scheme = "pytorchcv"
    options = {"root": "path", "models": "str_list", "probe_timeout_s": "number"}
    description = "pytorchcv models, enumerated from the package's model_metainfos.csv"

    @property
    def root(self) -> Path:
        """Where weight files live: the ``root`` option, else $WW_RAY_PYTORCHCV_ROOT, else ~/.torch/models."""
        root = self.config.options.get("root") or os.environ.get(ROOT_ENV) or DEFAULT_ROOT
        return Path(os.path.expanduser(str(root))).resolve()

    def list_specs(self) -> list[ModelSpec]:
        rows = read_metainfo()
        wanted = self.config.options.get("models")
        if wanted:
            by_name = {row.name: row for row in rows}
            missing = [name for name in wanted if name not in by_name]
            if missing:
                raise ZooError(f"pytorchcv has no model(s) {missing}")
            rows = [by_name[name] for name in wanted]
        return [self.spec_of(row) for row in rows]

    def spec_for(self, model_id: str) -> ModelSpec:
        check_safe_id(model_id, what="pytorchcv model name")
        for row in read_metainfo():
            if row.name == model_id:
                return self.finish(self.spec_of(row))
        raise ZooError(f"pytorchcv has no model {model_id!r} (see `ww-ray zoo list` or its model_metainfos.csv)")

    def spec_of(self, row: MetaRow) -> ModelSpec:
        dataset, task, measure = dataset_task_measure(row)
        value = reported_figure(row)
        figures = figure_fields({measure: value}) if (measure and value is not None) else {}
        extra: dict[str, object] = {"file_name": row.file_name, "release_tag": row.tag, "caption": row.caption,
                                    "arxiv": row.arxiv, "test_dataset": row.test_dataset}
        if row.params:
            extra["estimated_size_bytes"] = 4 * row.params
        if not row.has_weights:
            extra[SKIP_REASON] = f"pytorchcv publishes no pretrained weights for {row.name}"
        return ModelSpec(
            source=self.source,
            model_id=row.name,
            revision=row.sha1,
            architecture=architecture_of(row.name),
            dataset=dataset,
            task=task,
            params=row.params,
            uri=RELEASE_URL.format(tag=row.tag, file=row.file_name) if row.has_weights else None,
            zoo_kind=self.kind,
            extra=extra,
            **figures,
        )

    def metadata_sources(self) -> set[str]:
        return {self.source, self.kind}

    def load(self, spec: ModelSpec) -> Iterator[LayerWeight]:
        self.check_not_skipped(spec)
        name = check_safe_id(spec.model_id, what="pytorchcv model name")
        module = self.load_module(name, spec)
        return iter(layer_weights_from_module(module))

    def load_module(self, name: str, spec: ModelSpec | None = None):
        """The pretrained ``torch.nn.Module`` through pytorchcv's ``get_model(..., pretrained=True, root=...)``."""
        from pytorchcv.model_provider import get_model

        root = self.root
        file_name = str((spec.extra.get("file_name") if spec else None) or self._row(name).file_name)
        local = root / file_name
        if root not in local.resolve().parents:
            raise ZooError(f"refusing weight file name {file_name!r}: it would leave {root}")
        if not local.is_file():
            self._check_reachable(name, local)
        try:
            with forced_weights_only():
                return get_model(name, pretrained=True, root=str(root)).eval()
        except Exception as exc:  # pytorchcv raises plain ValueError/RuntimeError/requests errors
            text = str(exc)
            if "weights only load failed" in text.lower() or "weights_only" in text:
                raise CheckpointError(
                    f"refused to load {local}: it is a pickle that needs code outside torch's weights_only "
                    "allow-list; nothing from it was executed"
                ) from exc
            if "hash" in text.lower():
                raise ZooError(f"pytorchcv weights for {name} at {local} do not match the published SHA-1: {text}") from exc
            if local.is_file():
                raise ZooError(f"pytorchcv could not load {name} from {local}: {text}") from exc
            raise ZooUnavailableError(self._offline_message(name, local, text)) from exc

    def _row(self, name: str) -> MetaRow:
        for row in read_metainfo():
            if row.name == name:
                return row
        raise ZooError(f"pytorchcv has no model {name!r}")

    def _check_reachable(self, name: str, local: Path) -> None:
        if os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes"):
            raise ZooUnavailableError(self._offline_message(name, local, f"{OFFLINE_ENV} is set"))
        timeout = float(self.config.options.get("probe_timeout_s", 5.0))
        if not _github_reachable(timeout):
            raise ZooUnavailableError(self._offline_message(name, local, "github.com cannot be reached"))

    def _offline_message(self, name: str, local: Path, why: str) -> str:
        tag = self._row(name).tag or "<tag>"
        return (
            f"cannot fetch pytorchcv weights for {name} ({why}). To work offline, put the file "
            f"{local.name} (from {RELEASE_URL.format(tag=tag, file=local.name)}, unzipped) into {local.parent} "
            f"and point the zoo there with `root:` in the config (or ${ROOT_ENV})."
        )
