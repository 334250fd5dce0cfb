"""From listing entries to the models a rescan analyses: skip rules, filters, sizes from safetensors headers.

For each entry, cheapest check first (so that known models cost no Hub call):

1. its key ``(source, repo id, sha)`` is already analysed for this analyzer version and preset → skipped;
2. it failed ``max_failures`` times → given up (reported, never retried for that sha);
3. the name globs (``include``/``exclude``) and ``min_downloads`` → left out;
4. only now the Hub is asked for the model's files and safetensors headers (``HubZoo.describe``, no
   download): parameter count, architecture, size. Too large (``max_size``), no safetensors, or out
   of the ``params``/``architectures``/``datasets`` filters → left out. A repo left out for its kind
   (``zoos.repo_kind.UNANALYSABLE_KINDS``: quantized, no weights, an adapter nothing reads) keeps its
   spec, so that the rescan records it as a ``skipped`` models row with its ``repo_kind``.

What is left are the candidates. They are analysed oldest first (so the watermark, a low-water mark,
moves on steadily even when the per-night cap bites), up to ``max_models``.
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
from dataclasses import dataclass, field

from ww_ray.engine.plan import model_key
from ww_ray.rescan.history import History, Key
from ww_ray.rescan.listing import Listed, listed_from_info
from ww_ray.rescan.settings import HubFilters
from ww_ray.zoos.spec import SKIP_REASON
from ww_ray.errors import UnsafeIdError
from ww_ray.zoos.hub import HubZoo, split_model_ref
from ww_ray.zoos.repo_kind import UNANALYSABLE_KINDS
from ww_ray.zoos.spec import ModelSpec

#: Why a listed model is not analysed.
REASONS = ("already analysed", "given up", "filtered", "below min_downloads", "too large", "not analysable",
           "unavailable")


@dataclass(frozen=True)
class Candidate:
    """A model revision to analyse, and what the dataset knew about the model before."""

    zoo: int
    listed: Listed
    spec: ModelSpec
    previous_revisions: tuple[str, ...] = ()

    @property
    def key(self) -> Key:
        return model_key(self.spec)

    @property
    def is_new_model(self) -> bool:
        return not self.previous_revisions


@dataclass(frozen=True)
class Rejected:
    zoo: int
    repo_id: str
    sha: str | None
    reason: str
    detail: str | None = None
    spec: ModelSpec | None = None   # for a repo left out for its kind: the row the rescan records


@dataclass
class Selection:
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def count(self, reason: str) -> int:
        return sum(r.reason == reason for r in self.rejected)


def _name_ok(zoo: HubZoo, repo_id: str) -> bool:
    name = repo_id.lower()
    cfg = zoo.config
    if cfg.include and not any(fnmatch.fnmatchcase(name, g.lower()) for g in cfg.include):
        return False
    return not any(fnmatch.fnmatchcase(name, g.lower()) for g in cfg.exclude)


def examine(index: int, zoo: HubZoo, filters: HubFilters, entry: Listed, history: History,
            max_failures: int, selection: Selection) -> None:
    """Decide one listing entry: append it to the candidates or to the rejected of ``selection``."""
    def reject(reason: str, detail: str | None = None, spec: ModelSpec | None = None) -> None:
        selection.rejected.append(Rejected(index, entry.repo_id, entry.sha, reason, detail, spec))

    try:
        repo_id, _ = split_model_ref(entry.repo_id)
    except UnsafeIdError as exc:
        reject("filtered", str(exc))
        return
    key = (zoo.source, repo_id, entry.sha or "")
    if entry.sha and key in history.done:
        reject("already analysed")
        return
    failures = history.failures.get(key, 0)
    if entry.sha and failures >= max_failures:
        reject("given up", f"failed {failures} times (rescan.max_failures = {max_failures})")
        return
    if not _name_ok(zoo, repo_id):
        reject("filtered", "include/exclude")
        return
    if filters.min_downloads and (entry.downloads or 0) < filters.min_downloads:
        reject("below min_downloads", f"{entry.downloads or 0} < {filters.min_downloads}")
        return
    spec = zoo.finish(zoo.describe(repo_id, entry.sha, listed=entry.info))
    if model_key(spec) in history.done:  # the listing gave no sha, the description did
        reject("already analysed")
        return
    if not zoo.accepts(spec):
        reject("filtered", "params/architectures/datasets")
        return
    reason = spec.extra.get(SKIP_REASON)
    if reason:
        cap = zoo.config.max_size_bytes
        too_large = cap is not None and spec.size_bytes is not None and spec.size_bytes > cap
        by_kind = not too_large and spec.repo_kind in UNANALYSABLE_KINDS
        reject("too large" if too_large else "not analysable", str(reason), spec if by_kind else None)
        return
    previous = history.previous_revisions(spec.source, spec.model_id, spec.revision or "")
    selection.candidates.append(Candidate(index, entry, spec, tuple(previous)))


def list_explicit(zoo: HubZoo) -> tuple[list[Listed], list[Rejected]]:
    """The current commit of each model a ``models:`` zoo names (one ``model_info`` call each)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    entries, problems = [], []
    default_revision = zoo.config.options.get("revision")
    for ref in zoo.config.options.get("models") or []:
        try:
            repo_id, revision = split_model_ref(ref)
        except UnsafeIdError as exc:
            problems.append(Rejected(-1, ref, None, "filtered", str(exc)))
            continue
        try:
            info = zoo.client.model_info(repo_id, revision=revision or default_revision)
        except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
            problems.append(Rejected(-1, repo_id, revision, "unavailable", f"not on the Hub: {_short(exc)}"))
            continue
        except Exception as exc:  # a network error for one model must not stop the others
            problems.append(Rejected(-1, repo_id, revision, "unavailable", _short(exc)))
            continue
        entries.append(listed_from_info(info))
    return entries, problems


def order_and_cap(candidates: list[Candidate], max_models: int | None) -> tuple[list[Candidate], list[Candidate]]:
    """Oldest first; the first ``max_models`` are analysed now, the rest wait (pending)."""
    oldest = _dt.datetime.max.replace(tzinfo=_dt.timezone.utc)
    ordered = sorted(candidates, key=lambda c: (c.listed.last_modified or oldest, c.spec.model_id))
    if max_models is None:
        return ordered, []
    return ordered[:max_models], ordered[max_models:]


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


__all__ = ["Candidate", "REASONS", "Rejected", "Selection", "examine", "list_explicit", "order_and_cap"]
