"""Reported figures (published errors and scores) for models, read from the files that publish them.

Three kinds of file, detected from their content:

* the osmr/imgclsmob README result tables as HTML (``pytorchcv.html``): one table per dataset
  (the first, with Top1/Top5 columns, is ImageNet-1K; the others follow an ``<h3>`` naming the
  dataset). The model name comes from the row's log link, ``<model>-<error>-<sha1[:8]>.pth.log``.
* pytorchcv's ``model_metainfos.csv``: ``error_value`` is a percentage × 100 whose meaning depends
  on ``test_dataset``: ImageNet-1K (``in1k``) → top-5 error; ``cf`` (CIFAR-10/100, SVHN, by name
  suffix) and ``cub`` → top-1 error; segmentation → mIoU; ``cocohpe`` → AP; ``mcv`` → WER.
  ``NA`` and the ``0000`` placeholder are missing values.
* any other CSV with a model column (``model_id``/``model``/``modelname``/``model_name``) and some of
  ``top1_error``, ``top5_error`` (``_pct`` suffixes accepted), ``dataset``, ``params``.

Each reader returns a DataFrame with the columns of :data:`FIGURE_COLUMNS`; :func:`merge_figures`
combines several, earlier files taking precedence field by field.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from ww_ray.zoos.spec import normalize_dataset

FIGURE_COLUMNS = ["model_id", "dataset", "task", "top1_error", "top5_error", "reported_value",
                  "reported_measure", "params", "revision", "origin"]
_LOG_NAME = re.compile(r"^(?P<model>.+)-(?P<error>\d{4,5})-(?P<sha>[0-9a-f]{8})\.[a-z0-9.]+\.log$")
_SUFFIX_DATASETS = (("_cifar100", "cifar100"), ("_cifar10", "cifar10"), ("_svhn", "svhn"), ("_cub", "cub200"))
def dataset_from_name(model_id: str) -> str | None:
    """Dataset implied by a pytorchcv-style name suffix (``resnet20_cifar10`` → ``cifar10``)."""
    for suffix, dataset in _SUFFIX_DATASETS:
        if model_id.endswith(suffix):
            return dataset
    return None


def _number(text: object) -> float | None:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    cleaned = str(text).replace(",", "").replace("%", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _text(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return None if text in ("", "NA", "nan") else text


class _TableParser(HTMLParser):
    """Collects tables: the heading before each, and each row's cell texts and link targets."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self._heading: str | None = None
        self._in_heading = False
        self._row: list[dict] | None = None
        self._cell: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("h1", "h2", "h3", "h4"):
            self._in_heading, self._heading = True, ""
        elif tag == "table":
            self.tables.append({"heading": self._heading, "rows": []})
        elif tag == "tr":
            self._flush_row()
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"text": "", "links": []}
        elif tag == "a" and self._cell is not None:
            href = dict(attrs).get("href")
            if href:
                self._cell["links"].append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3", "h4"):
            self._in_heading = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag in ("tr", "table"):
            self._flush_row()

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self._heading = (self._heading or "") + data
        if self._cell is not None:
            self._cell["text"] += data

    def _flush_row(self) -> None:
        # README tables often omit </tr> on a table's last row
        if self._row and self.tables:
            self.tables[-1]["rows"].append(self._row)
        self._row = None


def read_imgclsmob_html(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Figures from imgclsmob README tables in HTML; also returns notes on rows that were left out."""
    parser = _TableParser()
    parser.feed(Path(path).read_text(encoding="utf-8", errors="replace"))
    rows, notes = [], []
    for table in parser.tables:
        if not table["rows"]:
            continue
        header = [c["text"].strip().lower() for c in table["rows"][0]]
        has_top = "top1" in header and "top5" in header
        dataset = normalize_dataset(table["heading"]) if table["heading"] else ("imagenet1k" if has_top else None)
        for cells in table["rows"][1:]:
            values = {h: c["text"].strip() for h, c in zip(header, cells)}
            logs = [l.rsplit("/", 1)[-1] for c in cells for l in c["links"] if l.endswith(".log")]
            match = next((m for m in map(_LOG_NAME.match, logs) if m), None)
            if match is None:
                notes.append(f"{Path(path).name}: row {values.get('model', '?')!r} ({dataset}) has no weight-file log link; left out")
                continue
            row = dict.fromkeys(FIGURE_COLUMNS)
            row.update(model_id=match["model"], dataset=dataset or dataset_from_name(match["model"]),
                       task="classification", revision=match["sha"], origin=Path(path).name,
                       params=_number(values.get("params")))
            if has_top:
                row.update(top1_error=_number(values.get("top1")), top5_error=_number(values.get("top5")))
            else:
                error_key = next((h for h in header if h.startswith("error")), None)
                miou_key = next((h for h in header if "miou" in h), None)
                if error_key is not None:
                    row["top1_error"] = _number(values.get(error_key))
                elif miou_key is not None:
                    row.update(reported_value=_number(values.get(miou_key)), reported_measure="miou", task="segmentation")
            rows.append(row)
    return _figures_frame(rows), notes


def read_pytorchcv_metainfo(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Figures from pytorchcv's ``model_metainfos.csv``, read with the pytorchcv zoo's own rules.

    The zoo decides dataset, task and what the 4-digit figure measures (top-5 error on ImageNet,
    top-1 on CIFAR/SVHN/CUB, mIoU/AP/WER elsewhere): one table of meanings for the whole project.
    """
    from ww_ray.zoos.pytorchcv import dataset_task_measure, read_metainfo, reported_figure

    rows, unknown = [], []
    for meta in read_metainfo(path, all_rows=True):
        dataset, task, measure = dataset_task_measure(meta)
        row = dict.fromkeys(FIGURE_COLUMNS)
        row.update(model_id=meta.name, params=meta.params, revision=meta.sha1, origin=Path(path).name,
                   dataset=dataset or dataset_from_name(meta.name), task=task)
        if task is None:
            unknown.append(meta.name)
        figure = reported_figure(meta)
        if figure is not None and measure is not None:
            if measure in ("top1_error", "top5_error"):
                row[measure] = figure
            row.update(reported_value=figure, reported_measure=measure)
        rows.append(row)
    notes = [f"{Path(path).name}: {len(unknown)} models have no known test_dataset, so no figure was taken: "
             + ", ".join(unknown)] if unknown else []
    # A name listed twice (irevnet301) keeps the row that has a figure.
    frame = _figures_frame(rows).sort_values("reported_value", na_position="last", kind="stable")
    return frame.drop_duplicates("model_id").sort_index(), notes


_GENERIC_ALIASES = {
    "model_id": ("model_id", "model", "modelname", "model_name", "name"),
    "dataset": ("dataset",),
    "top1_error": ("top1_error", "top1_error_pct", "top1"),
    "top5_error": ("top5_error", "top5_error_pct", "top5"),
    "params": ("params", "params_if_known", "num_params"),
    "task": ("task",),
}


def read_generic_csv(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Figures from a plain CSV (column names as in ``_GENERIC_ALIASES``)."""
    table = pd.read_csv(path)
    lower = {str(c).strip().lower(): c for c in table.columns}
    found = {field: next((lower[a] for a in aliases if a in lower), None) for field, aliases in _GENERIC_ALIASES.items()}
    if found["model_id"] is None:
        raise ValueError(f"{path}: no model column (one of {', '.join(_GENERIC_ALIASES['model_id'])})")
    rows = []
    for record in table.to_dict("records"):
        row = dict.fromkeys(FIGURE_COLUMNS)
        name = str(record[found["model_id"]]).strip()
        row.update(model_id=name, origin=Path(path).name)
        row["dataset"] = normalize_dataset(record[found["dataset"]]) if found["dataset"] and pd.notna(record[found["dataset"]]) else dataset_from_name(name)
        for field in ("top1_error", "top5_error", "params"):
            if found[field] is not None:
                row[field] = _number(record[found[field]])
        row["task"] = record[found["task"]] if found["task"] else ("classification" if row["top1_error"] is not None or row["top5_error"] is not None else None)
        rows.append(row)
    return _figures_frame(rows), []


def read_reported(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read one file of reported figures, choosing the reader from its content."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reported-figures file not found: {path}")
    if path.suffix.lower() in (".html", ".htm"):
        return read_imgclsmob_html(path)
    header = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].lower()
    if "error_value" in header and "test_dataset" in header:
        return read_pytorchcv_metainfo(path)
    return read_generic_csv(path)


def _figures_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=FIGURE_COLUMNS)
    for column in ("top1_error", "top5_error", "reported_value", "params"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def merge_figures(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per model id; for every field the first file (in order) that has a value wins.

    The headline ``reported_value``/``reported_measure`` is the merged top-1 error, else top-5,
    else the first file's other figure; ``revision`` comes with the first file that gave the model
    an error figure (so it names the weights that figure was measured on), else the first file.
    """
    if not frames:
        return pd.DataFrame(columns=FIGURE_COLUMNS)
    stacked = pd.concat([f.assign(_order=i) for i, f in enumerate(frames) if len(f)], ignore_index=True)
    if stacked.empty:
        return pd.DataFrame(columns=FIGURE_COLUMNS)
    stacked = stacked.sort_values("_order", kind="stable")
    fields = ["dataset", "task", "top1_error", "top5_error", "params"]
    merged = stacked.groupby("model_id", sort=False)[fields].first()  # first non-null per field
    has_error = stacked["top1_error"].notna() | stacked["top5_error"].notna()
    provenance = pd.concat([stacked[has_error], stacked]).drop_duplicates("model_id").set_index("model_id")
    merged["revision"] = provenance["revision"]
    merged["origin"] = provenance["origin"]
    other = stacked.dropna(subset=["reported_measure", "reported_value"]).drop_duplicates("model_id").set_index("model_id")
    merged["reported_value"] = merged["top1_error"].fillna(merged["top5_error"])
    merged["reported_measure"] = np.where(merged["top1_error"].notna(), "top1_error",
                                          np.where(merged["top5_error"].notna(), "top5_error", None))
    no_error = merged["reported_value"].isna()
    merged.loc[no_error, "reported_value"] = other["reported_value"].reindex(merged.index[no_error])
    merged.loc[no_error, "reported_measure"] = other["reported_measure"].reindex(merged.index[no_error])
    return _figures_frame(merged.reset_index().to_dict("records"))
