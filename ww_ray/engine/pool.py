"""The pool of ``SpectralWorker`` actors and the queue of shards waiting for one.

One shard runs on an actor at a time, so a busy actor is easy to find (and to stop, when its model
runs past its timeout) and an idle one takes the next shard at once. Shards queue in model order:
models that started first finish first, which frees their memory early.

Actors restart after a crash or a lost node (``max_restarts=-1``). An actor whose call failed is
*down*: it gets no shard until a cheap probe call succeeds again (Ray refuses calls to an actor
while it restarts). An actor still down after ``restart_grace_s`` (its node is gone and no other
node can host it) is retired, so the sweep never waits on it forever.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray

from ww_ray.engine.cluster import PoolSpec
from ww_ray.engine.worker import SpectralWorker
from ww_ray.spectral.presets import AnalysisOptions

log = logging.getLogger(__name__)

_RemoteWorker = ray.remote(SpectralWorker)
#: Seconds between probes of an actor that is down.
PROBE_INTERVAL_S = 1.0


@dataclass
class Job:
    """One shard of one attempt of one model."""

    model: Any              # the scheduler's key for the model
    attempt: int
    shard: int
    ref: Any                # the shard: a LazyShard (by value) or the ObjectRef of a streamed one
    cost: float


@dataclass
class Slot:
    """An actor and what it is doing."""

    index: int
    actor: Any
    job: Job | None = None
    result: ray.ObjectRef | None = None
    down_since: float | None = None    # set when a call failed, cleared when a probe succeeds
    probe: ray.ObjectRef | None = None
    next_probe: float = 0.0
    retired: bool = False

    @property
    def ready(self) -> bool:
        return self.job is None and self.down_since is None and not self.retired


@dataclass
class WorkerPool:
    """Actors, the shard queue, and the bookkeeping between them."""

    spec: PoolSpec
    options: AnalysisOptions
    restart_grace_s: float = 120.0
    slots: list[Slot] = field(default_factory=list)
    queue: deque[Job] = field(default_factory=deque)

    def start(self) -> None:
        for index in range(self.spec.workers):
            actor = _RemoteWorker.options(
                num_cpus=self.spec.num_cpus, num_gpus=self.spec.num_gpus, max_restarts=-1, max_task_retries=0,
                scheduling_strategy="SPREAD",
            ).remote(self.spec.threads, self.spec.device)
            self.slots.append(Slot(index=index, actor=actor))

    def warm_up(self, loaders: int, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until every actor is up and ``loaders`` load workers have imported
        the zoos, so cold starts do not count against the first models' time. True when all are ready."""
        from ww_ray.engine.loader import warm_up

        warm = ray.remote(warm_up).options(num_cpus=0, scheduling_strategy="SPREAD")
        refs = [slot.actor.info.remote() for slot in self.slots] + [warm.remote() for _ in range(max(0, loaders))]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        return len(ready) == len(refs)

    # ---- queue -------------------------------------------------------------------------------

    def submit(self, job: Job, front: bool = False) -> None:
        (self.queue.appendleft if front else self.queue.append)(job)

    def drop_model(self, model: Any) -> list[Slot]:
        """Forget queued shards of ``model``; return the slots busy with its shards."""
        self.queue = deque(job for job in self.queue if job.model != model)
        return [slot for slot in self.slots if slot.job is not None and slot.job.model == model]

    def dispatch(self) -> None:
        """Give queued shards to idle actors that are up."""
        for slot in self.slots:
            if not self.queue:
                return
            if slot.ready:
                job = self.queue.popleft()
                slot.job = job
                slot.result = slot.actor.compute.remote(job.ref, self.options)

    def busy_models(self) -> set:
        """Models with a shard on an actor that is up."""
        return {s.job.model for s in self.slots if s.job is not None and s.down_since is None}

    # ---- results and health ------------------------------------------------------------------

    def pending(self) -> dict[ray.ObjectRef, Slot]:
        """Outstanding calls (shard results and probes) by reference."""
        refs = {slot.result: slot for slot in self.slots if slot.result is not None}
        refs.update({slot.probe: slot for slot in self.slots if slot.probe is not None})
        return refs

    def release(self, slot: Slot, failed: bool) -> Job:
        """Free a slot whose shard call returned; a failed call marks the actor down. Returns the job."""
        job = slot.job
        slot.job, slot.result = None, None
        if failed and slot.down_since is None:
            slot.down_since, slot.next_probe = time.monotonic(), 0.0
        return job

    def probed(self, slot: Slot) -> None:
        """A probe came back: the actor is up again, or stays down and is probed again later."""
        ref, slot.probe = slot.probe, None
        try:
            ray.get(ref)
        except Exception:
            slot.next_probe = time.monotonic() + PROBE_INTERVAL_S
            return
        slot.down_since = None

    def maintain(self) -> list[Slot]:
        """Probe actors that are down; retire those down past the grace period (returned)."""
        now = time.monotonic()
        retired = []
        for slot in self.slots:
            if slot.retired or slot.down_since is None:
                continue
            if now - slot.down_since > self.restart_grace_s and slot.job is None:
                self._retire(slot)
                retired.append(slot)
            elif slot.probe is None and now >= slot.next_probe:
                slot.probe = slot.actor.info.remote()
        return retired

    def stop(self, slot: Slot) -> None:
        """Kill the actor (it restarts) to abandon the shard it computes; the slot frees when its call fails."""
        try:
            ray.kill(slot.actor, no_restart=False)
        except Exception:  # already dead or gone with its node: nothing left to kill
            return

    def _retire(self, slot: Slot) -> None:
        slot.retired, slot.probe = True, None
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:  # already dead or gone with its node: nothing left to kill
            log.debug("actor already gone")

    @property
    def alive(self) -> int:
        return sum(1 for s in self.slots if not s.retired)

    def shutdown(self) -> None:
        for slot in self.slots:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:  # already dead or gone with its node
                continue
        self.slots.clear()
        self.queue.clear()
