"""The driver's event loop: models in flight, their load tasks and shards, retries, timeouts, commits.

For each planned model, in order, while fewer than ``max_models_in_flight`` are in flight and fewer
than ``max_loads`` are loading (loads copy whole models in memory: a few at a time keep the workers
fed without taking their CPU and memory bandwidth):

1. a load task (``engine.loader.load_model``, a Ray streaming generator) sends a ``LoadHeader``:
   for safetensors models it holds the shard plan (tensor names; the workers read the weights
   themselves, the driver never does), for pickled ones the task then streams prepared shards,
   which the driver takes only while the model has fewer than ``STREAMED_IN_FLIGHT`` shards out;
2. each shard goes to the worker pool; each worker returns a ``ShardResult``;
3. when every shard is back, the rows are put back in layer order, summarised, and staged in the
   store's ``ModelCommitter``, which writes staged models in batches (``WW_RAY_COMMIT_BATCH``
   models, default 64, or ``WW_RAY_COMMIT_SECONDS`` seconds, default 5, whichever comes first):
   per partition one atomic ``layers`` file, then one atomic ``models`` file. A kill loses at most
   the models staged and not yet written — the next run redoes them (resume) — and Ctrl-C writes
   them before the run stops. A model counts as done (``ModelResult``, progress) once written.

Failures: an application error (the model's own problem) ends the model ``failed`` at once. A system
failure (a worker or node died, an object was lost, the memory monitor killed a task) retries: a
lost worker's shard goes to another worker, a lost load or shard reloads the model; after
``max_retries`` such failures the model ends ``failed``. A model whose own work — its load task's
run time plus the time its shards spend on live workers — passes ``model_timeout_s`` is stopped
(the workers computing it are restarted) and ends ``failed``; time queued behind other models or
waiting for a worker process to start does not count. A load not back within ``model_timeout_s``
plus ``LOAD_START_ALLOWANCE_S`` is cancelled and ends ``failed`` the same way. Every model the loop
takes ends with exactly one committed ``models`` row (a batch that cannot be written becomes
``failed`` rows saying why, written again; a model whose rows do not fit the schema a ``failed`` row).
"""
from __future__ import annotations

import contextlib

import logging
import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import ray
from ray import exceptions as rex

from ww_ray.engine.cluster import LOAD_CPUS
from ww_ray.engine.loader import STREAM_BACKPRESSURE, load_model
from ww_ray.engine.outcome import layer_rows, model_row, terminal_row
from ww_ray.engine.plan import ModelKey, load_memory, model_key
from ww_ray.engine.pool import Job, Slot, WorkerPool
from ww_ray.engine.results import LoadHeader, ModelResult, ShardResult
from ww_ray.spectral.presets import AnalysisOptions
from ww_ray.store import CommitError, ModelCommitter
from ww_ray.store.root import StoreRoot
from ww_ray.zoos.spec import ModelSpec

log = logging.getLogger(__name__)

_load_remote = ray.remote(load_model)
#: Streamed shards of one model the driver takes from its load task before their rows are back.
STREAMED_IN_FLIGHT = 3

#: Failures of the machinery, not of the model: worth another attempt.
SYSTEM_ERRORS = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError,
                 rex.OutOfMemoryError, rex.ObjectStoreFullError, rex.OutOfDiskError, rex.LocalRayletDiedError,
                 rex.RaySystemError)
#: Failures that would repeat however often they are retried.
UNSCHEDULABLE_ERRORS = (rex.TaskUnschedulableError, rex.ActorUnschedulableError, rex.RuntimeEnvSetupError)
_POLL_S = 0.5
#: Extra wall time a pending load may take beyond the model timeout (scheduling, starting a worker process).
LOAD_START_ALLOWANCE_S = 120.0


@dataclass
class _ModelRun:
    spec: ModelSpec
    started: float
    load: int = 0                # load attempts so far (shards of an earlier load are stale)
    failures: int = 0            # system failures survived; the model's `attempts` is 1 + failures
    busy_s: float = 0.0          # load run time + shard time on live workers (what the timeout limits)
    load_submitted: float = 0.0
    stream: Any = None           # the load task's ObjectRefGenerator while it has items to give
    header: LoadHeader | None = None
    shards: int = 0              # shards handed to the pool so far
    pending: set[int] = field(default_factory=set)
    rows: dict[int, list[dict]] = field(default_factory=dict)
    seconds_load: float = 0.0
    seconds_compute: float = 0.0

    @property
    def attempts(self) -> int:
        return 1 + self.failures

    @property
    def key(self) -> ModelKey:
        return model_key(self.spec)

    def wants_stream_item(self) -> bool:
        """True while its load task may have the header or a streamed shard for the driver to take."""
        if self.stream is None:
            return False
        return self.header is None or len(self.pending) < STREAMED_IN_FLIGHT


def short_error(exc: BaseException) -> str:
    """One line naming the error type, without Ray's traceback banner."""
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    cause = getattr(exc, "cause", None)
    if isinstance(exc, rex.RayTaskError) and cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the block is done (a commit is never cut in half); re-raise it after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


class Scheduler:
    """Runs planned models through load tasks and the worker pool and commits each one."""

    def __init__(self, specs: list[ModelSpec], options: AnalysisOptions, root: StoreRoot, run_id: str,
                 pool: WorkerPool, *, max_in_flight: int = 4, max_loads: int = 1, max_retries: int = 2,
                 model_timeout_s: float | None = None, node_memory: float | None = None,
                 on_model: Callable[[ModelResult], None] | None = None,
                 on_matrices: Callable[[int], None] | None = None) -> None:
        self.waiting: deque[ModelSpec] = deque(specs)
        self.options = options
        self.root = root
        self.run_id = run_id
        self.pool = pool
        self.max_in_flight = max(1, int(max_in_flight))
        self.max_loads = max(1, int(max_loads))
        self.max_retries = max(0, int(max_retries))
        self.model_timeout_s = model_timeout_s
        self.node_memory = node_memory
        self.on_model = on_model or (lambda result: None)
        self.on_matrices = on_matrices or (lambda n: None)
        self.active: dict[ModelKey, _ModelRun] = {}
        self.results: list[ModelResult] = []
        self.committer = ModelCommitter(root)  # batch size and age: WW_RAY_COMMIT_BATCH / _SECONDS
        self._staged: dict[str, tuple[_ModelRun, ModelResult]] = {}  # commit_id -> a model waiting for its flush
        self._last_tick = time.monotonic()

    # ---- the loop ----------------------------------------------------------------------------

    def run(self) -> list[ModelResult]:
        """Run until every model is committed; KeyboardInterrupt propagates (call ``abort`` then)."""
        while self.waiting or self.active:
            while self.waiting and len(self.active) < self.max_in_flight and self._loading() < self.max_loads:
                self._start(self.waiting.popleft())
            self.pool.dispatch()
            loads = {run.stream: run for run in self.active.values() if run.wants_stream_item()}
            calls = self.pool.pending()
            refs = list(loads) + list(calls)
            if refs:
                ready, rest = ray.wait(refs, num_returns=1, timeout=_POLL_S)
                if ready and rest:
                    more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready += more
                for ref in ready:
                    if ref in loads:
                        self._on_stream_item(loads[ref], ref)
                    elif calls[ref].probe == ref:
                        self.pool.probed(calls[ref])
                    else:
                        self._on_computed(calls[ref])
            elif self.active:
                time.sleep(0.05)
            self._tick()
            self._check_timeouts()
            self._check_workers()
            if self.committer.due():
                self._flush()
        self._flush()
        return self.results

    def abort(self) -> list[ModelKey]:
        """Forget everything in flight (after Ctrl-C); returns the keys of models left unfinished.

        Load tasks are not ``ray.cancel``-ed: a cancel that races the task's own completion aborts the
        driver inside Ray's core worker (``Check failed: it != submissible_tasks_.end()``,
        ray-project/ray#54798), which turned a clean Ctrl-C into a crash before the manifest was
        written. The driver disconnects right after, and Ray stops the tasks of a finished job itself.
        Models already finished and staged are written first (they are done, not unfinished).
        """
        self._flush()
        unfinished = list(self.active) + [model_key(spec) for spec in self.waiting]
        self.active.clear()
        self.waiting.clear()
        return unfinished

    # ---- loading -----------------------------------------------------------------------------

    def _loading(self) -> int:
        return sum(1 for run in self.active.values() if run.stream is not None)

    def _start(self, spec: ModelSpec) -> None:
        run = _ModelRun(spec=spec, started=time.monotonic())
        self.active[run.key] = run
        self._submit_load(run)

    def _submit_load(self, run: _ModelRun) -> None:
        run.load += 1
        run.header, run.shards, run.pending, run.rows = None, 0, set(), {}
        run.load_submitted = time.monotonic()
        run.stream = _load_remote.options(
            num_returns="streaming", _generator_backpressure_num_objects=STREAM_BACKPRESSURE,
            num_cpus=LOAD_CPUS, memory=load_memory(run.spec, self.node_memory),
            max_retries=0, retry_exceptions=False, scheduling_strategy="SPREAD",
        ).remote(run.spec, self.options, max(1, self.pool.alive))

    def _on_stream_item(self, run: _ModelRun, stream: Any) -> None:
        try:
            ref = next(stream)
        except StopIteration:
            run.stream = None
            if run.header is None:
                self._fail(run, "the load task ended without a header")
            elif not run.pending:
                self._complete(run)
            return
        if run.header is not None:  # a streamed shard: straight to the pool, never fetched here
            self._submit_shard(run, ref, cost=0.0)
            return
        try:
            header = ray.get(ref)
        except UNSCHEDULABLE_ERRORS as exc:
            self._fail(run, f"the load task cannot be scheduled: {short_error(exc)}")
            return
        except SYSTEM_ERRORS + (rex.TaskCancelledError,) as exc:
            self._system_failure(run, exc, "loading")
            return
        except Exception as exc:  # the load task itself raised: a bug or a broken environment, not retried
            self._fail(run, f"load task error: {short_error(exc)}")
            return
        run.header = header
        run.seconds_load += header.seconds_load
        run.busy_s += header.seconds_load
        if header.status != "ok":
            run.stream = None
            self._commit(run, [], terminal_row(run.spec, header.status, header.error, self.run_id,
                                               self.options, timings=self._timings(run), attempts=run.attempts))
            return
        for shard in header.lazy_shards:
            self._submit_shard(run, shard, cost=shard.cost)
        if not header.streamed:
            run.stream = None
            if not run.pending:
                self._complete(run)

    def _submit_shard(self, run: _ModelRun, payload: Any, cost: float) -> None:
        self.pool.submit(Job(model=run.key, attempt=run.load, shard=run.shards, ref=payload, cost=cost))
        run.pending.add(run.shards)
        run.shards += 1

    # ---- computing ---------------------------------------------------------------------------

    def _on_computed(self, slot: Slot) -> None:
        try:
            value, problem = ray.get(slot.result), None
        except Exception as exc:  # sorted out below: system failure, unschedulable, or the worker's own error
            value, problem = None, exc
        system = isinstance(problem, SYSTEM_ERRORS + (rex.TaskCancelledError,))
        job = self.pool.release(slot, failed=system)
        run = self.active.get(job.model)
        if run is None or run.load != job.attempt:
            return  # a shard of a model that already ended, or of an earlier attempt
        if problem is None:
            result: ShardResult = value
            run.rows[job.shard] = result.rows
            run.seconds_compute += result.seconds
            run.pending.discard(job.shard)
            self.on_matrices(len(result.rows))
            if not run.pending and run.stream is None:
                self._complete(run)
        elif isinstance(problem, rex.ObjectLostError):
            self._system_failure(run, problem, f"fetching shard {job.shard}")
        elif system:  # the worker died or restarted under the shard; the shard itself is intact
            run.failures += 1
            if run.failures > self.max_retries:
                self._fail(run, f"gave up after {run.failures} worker failures; last: {short_error(problem)}")
            else:
                log.warning("worker lost while computing %s/%s shard %d (%s); running the shard again",
                            job.model[0], job.model[1], job.shard, short_error(problem))
                self.pool.submit(job, front=True)
        elif isinstance(problem, UNSCHEDULABLE_ERRORS):
            self._fail(run, f"the spectral worker cannot be scheduled: {short_error(problem)}")
        else:
            self._fail(run, f"spectral worker error: {short_error(problem)}")

    def _system_failure(self, run: _ModelRun, exc: BaseException, where: str) -> None:
        run.failures += 1
        if run.failures > self.max_retries:
            self._fail(run, f"gave up after {run.failures} system failures, the last while {where}: {short_error(exc)}")
            return
        log.warning("system failure while %s %s/%s (%s); loading it again (attempt %d)",
                    where, run.spec.source, run.spec.model_id, short_error(exc), run.attempts)
        self.pool.drop_model(run.key)
        self._submit_load(run)

    # ---- ending a model ----------------------------------------------------------------------

    def _timings(self, run: _ModelRun) -> dict[str, float]:
        return {"load": run.seconds_load, "compute": run.seconds_compute,
                "total": time.monotonic() - run.started}

    def _complete(self, run: _ModelRun) -> None:
        rows = [row for shard in sorted(run.rows) for row in run.rows[shard]]
        rows.sort(key=lambda row: (row["layer_index"], -1 if row.get("slice_id") is None else row["slice_id"]))
        try:
            model = model_row(run.spec, rows, self.run_id, self.options, timings=self._timings(run),
                              attempts=run.attempts)
        except Exception as exc:  # a summary that cannot be built must not lose the model
            self._fail(run, f"cannot summarise the model: {short_error(exc)}")
            return
        self._commit(run, layer_rows(rows), model)

    def _fail(self, run: _ModelRun, error: str) -> None:
        self._commit(run, [], terminal_row(run.spec, "failed", error, self.run_id, self.options,
                                           timings=self._timings(run), attempts=run.attempts))

    def _commit(self, run: _ModelRun, layers: list[dict[str, Any]], model: dict[str, Any]) -> None:
        """Stage the model's rows for the next batch commit (a failure row when they cannot be written)."""
        self.active.pop(run.key, None)
        self.pool.drop_model(run.key)
        run.stream, run.rows = None, {}
        result = ModelResult(
            source=run.key[0], model_id=run.key[1], revision=run.key[2], status=model["status"],
            error=model.get("error"), attempts=run.attempts, matrices=len(layers), seconds_load=run.seconds_load,
            seconds_compute=run.seconds_compute, seconds_total=time.monotonic() - run.started, committed=False,
        )
        with deferred_interrupt():
            try:
                staged = self.committer.stage(layers, model)
            except Exception as exc:  # rows the store refuses (another model's key, a bad status ...)
                log.error("cannot commit %s/%s: %s", run.spec.source, run.spec.model_id, short_error(exc))
                self._stage_failure(run, result, f"results could not be written: {short_error(exc)}")
            else:
                self._staged[staged["commit_id"]] = (run, result)
            if self.committer.due():
                self._flush()

    def _stage_failure(self, run: _ModelRun, result: ModelResult, error: str) -> None:
        result = replace(result, status="failed", error=error, matrices=0)
        try:
            staged = self.committer.stage([], terminal_row(run.spec, "failed", error, self.run_id, self.options,
                                                           timings=self._timings(run), attempts=run.attempts))
        except Exception as again:
            log.error("cannot commit the failure of %s/%s either: %s", run.spec.source, run.spec.model_id,
                      short_error(again))
            self._record(result)
            return
        self._staged[staged["commit_id"]] = (run, result)

    def _flush(self) -> None:
        """Write the staged models; a batch that cannot be written is staged again as failure rows, once."""
        for retry in (False, True):
            if not len(self.committer):
                return
            with deferred_interrupt():
                try:
                    written, unwritten = self.committer.flush(), []
                except CommitError as exc:
                    written, unwritten = exc.written, exc.unwritten
                    cause = exc.__cause__ or exc
                    log.error("cannot commit %d model(s): %s", len(unwritten), short_error(cause))
                for row in written:
                    run, result = self._staged.pop(row["commit_id"])
                    if row["status"] != result.status:  # rows that did not fit the schema: a failed row instead
                        result = replace(result, status=row["status"], error=row.get("error"), matrices=0)
                    self._record(replace(result, committed=True))
                for row in unwritten:
                    run, result = self._staged.pop(row["commit_id"])
                    if retry:
                        log.error("cannot commit the failure of %s/%s either", run.spec.source, run.spec.model_id)
                        self._record(replace(result, status="failed", matrices=0))
                    else:
                        self._stage_failure(run, result, f"results could not be written: {short_error(cause)}")

    def _record(self, result: ModelResult) -> None:
        self.results.append(result)
        self.on_model(result)

    # ---- watchdogs ---------------------------------------------------------------------------

    def _tick(self) -> None:
        """Add the time since the last tick to every model with a shard on a live worker."""
        now = time.monotonic()
        elapsed, self._last_tick = now - self._last_tick, now
        busy = self.pool.busy_models()
        for run in self.active.values():
            if run.key in busy:
                run.busy_s += elapsed

    def _timed_out(self, run: _ModelRun, now: float) -> bool:
        if run.busy_s > self.model_timeout_s:
            return True
        return run.header is None and now - run.load_submitted > self.model_timeout_s + LOAD_START_ALLOWANCE_S

    def _check_timeouts(self) -> None:
        if not self.model_timeout_s:
            return
        now = time.monotonic()
        for run in [r for r in self.active.values() if self._timed_out(r, now)]:
            if run.header is None:
                stage = "loading"
                if run.stream is not None:
                    _cancel(run.stream)
            else:
                stage = f"computing ({run.shards - len(run.pending)} of {run.shards} shards done)"
            for slot in self.pool.drop_model(run.key):
                self.pool.stop(slot)
            self._fail(run, f"timed out after {self.model_timeout_s:g} s (ray.model_timeout_s) while {stage}")

    def _check_workers(self) -> None:
        for slot in self.pool.maintain():
            log.warning("spectral worker %d did not come back within %g s after a failure; retired it "
                        "(%d workers left)", slot.index, self.pool.restart_grace_s, self.pool.alive)
        if self.pool.alive == 0 and (self.active or self.waiting):
            message = ("no spectral worker is left: their nodes were lost and the cluster has no room to restart "
                       "them; add nodes or lower ray.cpus_per_worker / ray.gpus_per_worker and run again")
            for run in list(self.active.values()):  # loads left running end with the driver's job
                self._fail(run, message)
            while self.waiting:
                spec = self.waiting.popleft()
                now = time.monotonic()
                self._fail(_ModelRun(spec=spec, started=now), message)


def _cancel(ref: Any) -> None:
    """Best-effort cancel of a load task past its deadline; one that already finished is left alone.

    Only used for timeouts: ``ray.cancel`` racing the task's completion can abort the driver
    (ray-project/ray#54798), so a task that is done by now is not cancelled at all, which leaves that
    race to a task finishing in the same instant it is found overdue.
    """
    done, _ = ray.wait([ref], timeout=0)
    if done:
        return
    with contextlib.suppress(Exception):
        ray.cancel(ref, force=True)
