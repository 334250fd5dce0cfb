"""What the driver shows: start-up lines, a progress bar while a sweep runs, a summary table at the end.

While Ray and the workers start, ``Stages`` prints one line per step on stderr (``starting local Ray…``,
``Ray ready in 3.1 s``, ``workers ready in 4.2 s``), so a cold start is never silent. The bar (tqdm,
on stderr) appears once the workers are up; it counts models and shows matrices done, failures and
the ETA. The summary names the counts by status, the slowest models, every distinct failure message
in full (once, with how many models it stopped), and where the data is with a query to start from.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any, TextIO

from tqdm import tqdm

from ww_ray.engine.results import ModelResult, SweepResult
from ww_ray.errors import EXIT_ALL_FAILED

#: Width of a zoo-listing error or a crash reason in the summary (failure messages are never cut).
_ERROR_CHARS = 300


class Stages:
    """One stderr line per start-up step, with the seconds since the previous one (off: prints nothing).

    >>> import io
    >>> out = io.StringIO()
    >>> stages = Stages(enabled=True, file=out)
    >>> stages.say("starting local Ray…"); seconds = stages.done("Ray ready")
    >>> out.getvalue().splitlines()[0], out.getvalue().splitlines()[1].startswith("ww-ray sweep: Ray ready in ")
    ('ww-ray sweep: starting local Ray…', True)
    """

    def __init__(self, enabled: bool = True, file: TextIO | None = None, prefix: str = "ww-ray sweep") -> None:
        self.enabled = enabled
        self.file = file
        self.prefix = prefix
        self.mark = time.monotonic()

    def say(self, message: str) -> None:
        """Print what starts now (and restart the clock for ``done``)."""
        self.mark = time.monotonic()
        self._print(message)

    def done(self, message: str) -> float:
        """Print ``message in N s`` (seconds since the last ``say``); return those seconds."""
        seconds = time.monotonic() - self.mark
        self._print(f"{message} in {seconds:.1f} s")
        return seconds

    def _print(self, message: str) -> None:
        if self.enabled:
            print(f"{self.prefix}: {message}", file=self.file or sys.stderr, flush=True)


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


def _one_line(text: str | None) -> str:
    return " ".join(str(text or "").split()) or "(no message)"


def _table(rows: list[list[Any]], header: list[str]) -> list[str]:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]


def format_summary(result: SweepResult, slowest: int = 5, failures: int = 10, resume: bool = True) -> str:
    """The end-of-run summary table of a sweep (``resume``: whether this run skipped models already done).

    Models not analysed are listed (the first ``failures``) with a reference to their error; every
    distinct error is then printed once, in full, with the number of models it stopped.
    """
    counts = result.counts
    lines = [
        f"ww-ray sweep {result.run_id}: {result.status} in {result.seconds:.1f} s"
        + (f" ({result.seconds_startup:.1f} s starting Ray and the workers)" if result.seconds_startup else ""),
        f"  models: {result.planned} planned, {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
        f"{counts.get('skipped', 0)} skipped; "
        + (f"{result.already_done} already done (resume)" if resume else "resume off (--no-resume)")
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
        messages = Counter(_one_line(r.error) for r in bad)
        number = {message: i for i, (message, _) in enumerate(messages.most_common(), start=1)}
        lines.append(f"  not analysed ({len(bad)}):")
        lines += _table([[f"{r.source}/{r.model_id}", r.status, f"[{number[_one_line(r.error)]}]"]
                         for r in bad[:failures]], ["model", "status", "error"])
        if len(bad) > failures:
            lines.append(f"  ... and {len(bad) - failures} more (models table, status != 'ok')")
        lines.append("  errors (each distinct message once, in full):")
        for message, count in messages.most_common():
            lines.append(f"  [{number[message]}] {count} model{'s' if count != 1 else ''}: {message}")
    for problem in result.zoo_errors:
        lines.append(f"  zoo {problem['zoo']} ({problem['kind']}) could not be listed: {_clip(problem['error'])}")
    if result.error:
        lines.append(f"  stopped by an error: {_clip(result.error)}")
    if result.unfinished:
        if resume:
            lines.append("  unfinished: run the same command again to finish the remaining models (resume "
                         "skips the models already committed)")
        else:
            lines.append("  unfinished: run the same command without --no-resume to finish the remaining models "
                         "(this run's committed models are kept and skipped); with --no-resume it starts over")
    if result.planned and not counts.get("ok") and counts.get("failed"):
        lines.append(f"  no model was analysed: every one of the {result.planned} planned models failed or was "
                     f"skipped (exit status {EXIT_ALL_FAILED})")
    lines.append(f"  data: {result.root}  (layers/, models/, runs/{result.run_id}.json)")
    # the views, not raw read_parquet globs: those also see every run's rows and files a compaction replaced
    lines.append(f"  query: ww-ray query {result.root} \"SELECT model_id, status, alpha FROM models\"  "
                 f"(or ww_ray.open_dataset({str(result.root)!r}).sql(...))")
    return "\n".join(lines)
