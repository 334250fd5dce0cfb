"""What the dataset already knows about models, as a rescan needs it: done keys, failures, known ids.

* done keys: ``(source, model_id, revision)`` whose latest row for this analyzer version and
  preset is ``ok`` or ``skipped`` (``ww_ray.store.done_keys``, the sweep's own resume rule);
* failures: how many ``failed`` rows each key has for this analyzer version and preset (a key that
  failed ``max_failures`` times is given up);
* known model ids: ``(source, model_id)`` with any analysed revision, to tell a new model from a new
  revision of a known one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ww_ray.keys import ModelKey
from ww_ray.store import done_keys, open_pyarrow
from ww_ray.store.root import StoreRoot

Key = ModelKey


@dataclass
class History:
    done: set[Key] = field(default_factory=set)
    failures: dict[Key, int] = field(default_factory=dict)
    revisions: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def previous_revisions(self, source: str, model_id: str, revision: str) -> list[str]:
        return sorted(self.revisions.get((source, model_id), set()) - {revision})


def read_history(root: StoreRoot, analyzer_version: str, preset: str) -> History:
    """Read the keys and statuses of the ``models`` table once (only the few columns needed)."""
    columns = ["source", "model_id", "revision", "status", "analyzer_version", "preset"]
    frame = open_pyarrow(root, "models").to_table(columns=columns).to_pandas()
    frame = frame[(frame["analyzer_version"] == analyzer_version) & (frame["preset"] == preset)]
    history = History(done=done_keys(root, analyzer_version, preset=preset))
    failed = frame[frame["status"] == "failed"].groupby(["source", "model_id", "revision"]).size()
    history.failures = {(str(s), str(m), str(r)): int(n) for (s, m, r), n in failed.items()}
    ok = frame[frame["status"] == "ok"]
    for source, model_id, revision in ok[["source", "model_id", "revision"]].itertuples(index=False):
        history.revisions.setdefault((str(source), str(model_id)), set()).add(str(revision))
    return history
