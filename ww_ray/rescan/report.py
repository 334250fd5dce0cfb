"""The rescan report: the models analysed, their summary metrics and flags, what was left out and why.

Built from the dataset after the models are committed (so it shows what was stored, not what was
meant to be), kept in the rescan's manifest under ``report`` and printed as text or Markdown.

Flags of a model:

* ``failed: …`` / ``skipped: …`` — it could not be analysed (the error says why);
* ``under-trained: k of n matrices have alpha > 6`` and ``over-trained: k of n matrices have alpha < 2``
  (the per-layer ``warning`` of DESIGN.md §2);
* ``k of n matrices failed``;
* ``scale collapse: …`` — its mean log10 λmax is more than a decade below the median of the other
  models of its (dataset, architecture) series (``ww_ray.analysis.flags.scale_collapse``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pyarrow.dataset as pads

from ww_ray.analysis.flags import scale_collapse
from ww_ray.rescan.candidates import Candidate
from ww_ray.store import open_pyarrow
from ww_ray.store.root import StoreRoot

#: Summary metrics shown per model (the paper's and the fit's headline numbers).
REPORT_METRICS = ("alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "log_alpha_norm", "stable_rank")
_KEY = ["source", "model_id", "revision"]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _layer_warnings(root: StoreRoot, rows: pd.DataFrame, run_ids: list[str]) -> pd.DataFrame:
    """Per committed model row: matrices analysed, under-/over-trained counts (layers of these runs only)."""
    columns = _KEY + ["run_id", "commit_id", "status", "warning"]
    if rows.empty or not run_ids:
        return pd.DataFrame(columns=["commit_id", "matrices", "under", "over"])
    layers = open_pyarrow(root, "layers").to_table(
        columns=columns, filter=pads.field("run_id").isin(run_ids)).to_pandas()
    layers = layers[layers["commit_id"].isin(set(rows["commit_id"]))]
    ok = layers[layers["status"] == "ok"]
    grouped = ok.groupby("commit_id")
    return pd.DataFrame({
        "matrices": grouped.size(),
        "under": grouped["warning"].apply(lambda s: int((s == "under-trained").sum())),
        "over": grouped["warning"].apply(lambda s: int((s == "over-trained").sum())),
    }).reset_index()


def model_entries(root: StoreRoot, candidates: Iterable[Candidate], run_ids: list[str],
                  models: pd.DataFrame) -> list[dict[str, Any]]:
    """One report entry per candidate that has a row committed by this rescan's batches."""
    by_key = {c.key: c for c in candidates}
    if models.empty or not by_key:
        return []
    mine = models[models["run_id"].isin(run_ids)]
    mine = mine[[(s, m, r) in by_key for s, m, r in mine[_KEY].itertuples(index=False)]]
    warnings = _layer_warnings(root, mine, run_ids).set_index("commit_id")
    collapse = scale_collapse(models[models[["dataset", "architecture"]].notna().all(axis=1)])
    collapsed = dict(zip(collapse["model_id"], collapse["gap_decades"]))
    entries = []
    for row in mine.sort_values(["model_id", "revision"]).to_dict("records"):
        candidate = by_key[(row["source"], row["model_id"], row["revision"])]
        counts = warnings.loc[row["commit_id"]] if row["commit_id"] in warnings.index else None
        entries.append({
            "source": row["source"], "model_id": row["model_id"], "revision": row["revision"],
            "new_model": candidate.is_new_model, "previous_revisions": list(candidate.previous_revisions),
            "last_modified": candidate.listed.last_modified.isoformat() if candidate.listed.last_modified else None,
            "downloads": candidate.listed.downloads, "status": row["status"], "error": row.get("error"),
            "architecture": row.get("architecture"), "dataset": row.get("dataset"), "task": row.get("task"),
            "params": _number(row.get("params")), "size_bytes": _number(row.get("size_bytes")),
            "num_layers": _number(row.get("num_layers")),
            "metrics": {m: _number(row.get(m)) for m in REPORT_METRICS},
            "flags": flags_of(row, counts, collapsed.get(row["model_id"])),
            "run_id": row["run_id"],
        })
    return entries


def flags_of(row: Mapping[str, Any], counts: Mapping[str, Any] | None, collapse_gap: float | None) -> list[str]:
    """The flags of one model row (see the module docstring)."""
    status = row.get("status")
    if status != "ok":
        return [f"{status}: {row.get('error') or 'no reason recorded'}"]
    flags = []
    matrices = int(counts["matrices"]) if counts is not None else 0
    if counts is not None and int(counts["under"]):
        flags.append(f"under-trained: {int(counts['under'])} of {matrices} matrices have alpha > 6")
    if counts is not None and int(counts["over"]):
        flags.append(f"over-trained: {int(counts['over'])} of {matrices} matrices have alpha < 2")
    failed = _number(row.get("num_failed_layers")) or 0
    if failed:
        flags.append(f"{int(failed)} of {int(failed) + matrices} matrices failed")
    if collapse_gap is not None:
        flags.append(f"scale collapse: mean log10 lambda_max {collapse_gap:.2f} decades below its series' median")
    return flags


def format_report(report: Mapping[str, Any], markdown: bool = False) -> str:
    """The report as text (or Markdown): header, counts, one line per analysed model, regressions."""
    counts = report.get("counts", {})
    lines = [f"{'# ' if markdown else ''}ww-ray rescan {report.get('run_id')} ({report.get('status')})", ""]
    for zoo in report.get("zoos", []):
        lines.append(f"{'- ' if markdown else '  '}zoo {zoo['zoo']} [{zoo['fingerprint']}]: listed {zoo['listed']}, "
                     f"deferred {zoo['deferred']}, watermark {zoo['previous_watermark']} -> {zoo['watermark']}"
                     + (" (listing cut at max_listed)" if zoo.get("truncated") else "")
                     + (f"; ERROR {zoo['error']}" if zoo.get("error") else ""))
    lines.append("")
    lines.append("counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    models = report.get("models", [])
    lines += ["", f"{'## ' if markdown else ''}Models analysed ({len(models)})", ""]
    if markdown and models:
        lines += ["| model | revision | new | status | alpha | alpha_weighted | log_norm | log_spectral_norm | flags |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for entry in models:
        m = entry["metrics"]
        values = [_fmt(m.get(k)) for k in ("alpha", "alpha_weighted", "log_norm", "log_spectral_norm")]
        kind = "new model" if entry["new_model"] else "new revision"
        flags = "; ".join(entry["flags"]) or "-"
        if markdown:
            lines.append(f"| {entry['model_id']} | {entry['revision'][:10]} | {kind} | {entry['status']} | "
                         + " | ".join(values) + f" | {flags} |")
        else:
            lines.append(f"  {entry['model_id']}@{entry['revision'][:10]} ({kind}) {entry['status']}: "
                         f"alpha {values[0]}, alpha_weighted {values[1]}, log_norm {values[2]}, "
                         f"log_spectral_norm {values[3]} | flags: {flags}")
    pending = report.get("pending", [])
    if pending:
        lines += ["", f"{'## ' if markdown else ''}Left for the next rescan ({len(pending)})", ""]
        lines += [f"{'- ' if markdown else '  '}{p['model_id']}@{(p['revision'] or '')[:10]}: {p['why']}"
                  for p in pending[:50]]
    given_up = report.get("given_up", [])
    if given_up:
        lines += ["", f"{'## ' if markdown else ''}Given up after rescan.max_failures failures ({len(given_up)})", ""]
        lines += [f"{'- ' if markdown else '  '}{g['model_id']}@{(g['revision'] or '')[:10]}" for g in given_up]
    regressions = report.get("regressions", {})
    lines += ["", f"regressions refreshed: {regressions.get('rows', 0)} fits over "
                  f"{len(regressions.get('series', []))} touched series"
                  + (f" ({regressions['note']})" if regressions.get("note") else "")]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
