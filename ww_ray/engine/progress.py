"""What the driver shows: a progress bar while a sweep runs and a summary table at the end.

The bar (tqdm, on stderr) counts models and shows matrices done, failures and the ETA. The summary
names the counts by status, the slowest models, the failures with their errors, and where the data
is with a query to start from.
"""
from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from ww_ray.engine.results import ModelResult, SweepResult

_ERROR_CHARS = 160


class Progress:
    """A models progress bar with matrices done and failures in its postfix."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}
        self.matrix_count = 0
        self.bar = tqdm(total=total, unit="model", desc="ww-ray sweep", disable=not enabled or total == 0,
                        file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                        mininterval=0.1 if sys.stderr.isatty() else 30.0)

    def _postfix(self) -> None:
        self.bar.set_postfix(matrices=self.matrix_count, ok=self.counts["ok"], failed=self.counts["failed"],
                             skipped=self.counts["skipped"], refresh=False)

    def matrices(self, count: int) -> None:
        self.matrix_count += count
        self._postfix()
        self.bar.refresh()

    def model_done(self, result: ModelResult) -> None:
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        self._postfix()
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _clip(text: str | None, width: int = _ERROR_CHARS) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[list[Any]], header: list[str]) -> list[str]:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]


def format_summary(result: SweepResult, slowest: int = 5, failures: int = 10) -> str:
    """The end-of-run summary table of a sweep."""
    counts = result.counts
    lines = [
        f"ww-ray sweep {result.run_id}: {result.status} in {result.seconds:.1f} s"
        + (f" ({result.seconds_startup:.1f} s starting Ray and the workers)" if result.seconds_startup else ""),
        f"  models: {result.planned} planned, {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
        f"{counts.get('skipped', 0)} skipped; {result.already_done} already done (resume)"
        + (f"; {len(result.unfinished)} unfinished" if result.unfinished else ""),
        f"  matrices: {sum(r.matrices for r in result.results)} rows written",
    ]
    if result.pool:
        pool = result.pool
        lines.append(f"  workers: {pool['workers']} × ({pool['num_cpus']:g} CPU"
                     + (f", {pool['num_gpus']:g} GPU" if pool.get("num_gpus") else "")
                     + f", {pool['threads']} threads, {pool['device']})")
    timed = sorted((r for r in result.results if r.status == "ok"), key=lambda r: -r.seconds_total)[:slowest]
    if timed:
        lines.append("  slowest models:")
        lines += _table([[f"{r.source}/{r.model_id}", f"{r.seconds_total:.1f}", f"{r.seconds_load:.1f}",
                          f"{r.seconds_compute:.1f}", r.matrices] for r in timed],
                        ["model", "total s", "load s", "compute s", "matrices"])
    bad = [r for r in result.results if r.status != "ok"]
    if bad:
        lines.append("  not analysed:")
        lines += _table([[f"{r.source}/{r.model_id}", r.status, _clip(r.error)] for r in bad[:failures]],
                        ["model", "status", "error"])
        if len(bad) > failures:
            lines.append(f"  ... and {len(bad) - failures} more (models table, status != 'ok')")
    for problem in result.zoo_errors:
        lines.append(f"  zoo {problem['zoo']} ({problem['kind']}) could not be listed: {_clip(problem['error'], 300)}")
    if result.error:
        lines.append(f"  stopped by an error: {_clip(result.error, 300)}")
    if result.unfinished:
        lines.append("  unfinished: run the same command again to finish the remaining models (resume)")
    lines.append(f"  data: {result.root}  (layers/, models/, runs/{result.run_id}.json)")
    lines.append(f"  query: ww_ray.store.open_dataset({str(result.root)!r}).sql('SELECT model_id, status, alpha FROM models')"
                 f", or DuckDB read_parquet('{result.root}/models/**/*.parquet', hive_partitioning=true)")
    return "\n".join(lines)
