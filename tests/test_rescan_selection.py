"""Rescan logic without Ray: config, newest-first listing down to the watermark, skip rules, filters, dry run.

The Hub is ``tests._rescan_util.FakeHub`` (real ``huggingface_hub`` objects over files the tests
write); nothing is downloaded and nothing is analysed here.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from tests._rescan_util import BASE_TIME, FakeHub, rescan_yaml
from ww_ray.errors import ConfigError
from ww_ray.rescan import load_rescan_config, parse_rescan_config, run_rescan
from ww_ray.rescan.cli import cmd_rescan
from ww_ray.rescan.history import History
from ww_ray.rescan.listing import Listed, Listing, list_newest
from ww_ray.rescan.settings import parse_duration
from ww_ray.rescan.watermark import Watermark, next_watermark, previous_watermarks, zoo_fingerprint
from ww_ray.store import read_manifests

REPO = Path(__file__).resolve().parents[1]


def _at(hours: float) -> dt.datetime:
    return BASE_TIME + dt.timedelta(hours=hours)


@pytest.fixture()
def hub(tmp_path) -> FakeHub:
    hub = FakeHub(tmp_path)
    for hours, repo in enumerate(["acme/a", "lab/b", "acme/c", "lab/d", "acme/e", "other/f"]):
        hub.publish(repo, hours=hours, seed=hours)
    return hub


def _parse(zoo: dict, rescan: dict | None = None):
    return parse_rescan_config({"zoos": [{"kind": "hub", **zoo}], "rescan": rescan or {}}, base_dir=".")


# ---- config ------------------------------------------------------------------------------------


def test_config_merges_author_keys_and_validates():
    config = _parse({"author": "acme", "authors": ["lab", "acme"], "pipeline_tags": "fill-mask",
                     "min_downloads": 10, "max_size": "2GB"},
                    {"max_models": 5, "time_budget": "4h", "min_age": "7d", "since": "2025-01-01"})
    (filters,) = config.filters
    assert filters.authors == ("acme", "lab") and filters.pipeline_tags == ("fill-mask",)
    assert filters.min_downloads == 10 and config.zoos[0].max_size_bytes == 2 * 10**9
    assert "author" not in config.zoos[0].options           # listing keys stay with the rescan
    settings = config.settings
    assert (settings.max_models, settings.time_budget_s, settings.min_age_s) == (5, 4 * 3600, 7 * 86400)
    assert settings.since == dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    assert parse_duration("90m") == 5400 and parse_duration(30) == 30


@pytest.mark.parametrize("zoo, rescan, message", [
    ({"kind": "local", "path": "."}, {}, "must be `kind: hub`"),
    ({"kind": "hub", "limit": 3}, {}, "rescan.max_models"),
    ({"kind": "hub", "sort": "downloads"}, {}, "newest first"),
    ({"kind": "hub", "min_downloads": -1}, {}, "min_downloads"),
    ({"kind": "hub", "models": ["a/b"], "author": "a"}, {}, "cannot be combined"),
    ({"kind": "hub", "colour": "red"}, {}, "unknown key 'colour'"),
    ({"kind": "hub"}, {"max_model": 3}, "unknown key 'max_model' (did you mean 'max_models'?)"),
    ({"kind": "hub"}, {"time_budget": "soon"}, "duration"),
    ({"kind": "hub"}, {"since": "yesterday"}, "ISO date"),
    ({"kind": "hub"}, {"min_models": 1}, "at least 2"),
])
def test_config_errors_name_the_key(zoo, rescan, message):
    with pytest.raises(ConfigError) as caught:
        parse_rescan_config({"zoos": [zoo], "rescan": rescan}, base_dir=".")
    assert message in str(caught.value)


def test_shipped_nightly_config_loads():
    config = load_rescan_config(REPO / "configs" / "nightly-rescan.yaml")
    assert config.settings.max_models and config.settings.time_budget_s
    listed, watched = config.zoos
    assert config.filters[0].min_downloads > 0 and config.filters[0].authors
    assert listed.max_size_bytes is None      # no size cap by default (large models stream to the workers)
    assert watched.options["models"] and not config.filters[1].authors


# ---- listing -----------------------------------------------------------------------------------


def test_listing_merges_authors_newest_first_and_stops_at_the_watermark(hub):
    config = _parse({"authors": ["acme", "lab"]})
    listing = list_newest(hub, config.zoos[0], config.filters[0], stop_before=_at(2), max_listed=100,
                          now=_at(100))
    assert [e.repo_id for e in listing.entries] == ["acme/e", "lab/d", "acme/c"]
    assert not listing.truncated and listing.newest == _at(4)
    # each listing was read only until its first entry older than the watermark
    assert [c[1]["repo_id"] for c in hub.calls if c[0] == "listed"].count("acme/a") <= 1
    assert "lab/b" in [c[1]["repo_id"] for c in hub.calls if c[0] == "listed"]   # the one that stopped it

    boundary = list_newest(hub, config.zoos[0], config.filters[0], stop_before=_at(2), max_listed=100,
                           now=_at(100), seen_at_stop=frozenset({("acme/c", hub.current("acme/c")["sha"])}))
    assert [e.repo_id for e in boundary.entries] == ["acme/e", "lab/d"]      # a tie already examined


def test_listing_defers_young_revisions_and_reports_truncation(hub):
    config = _parse({"authors": ["acme", "lab"]})
    young = list_newest(hub, config.zoos[0], config.filters[0], stop_before=None, max_listed=100,
                        now=_at(4.5), min_age_s=3600)
    assert [e.repo_id for e in young.deferred] == ["acme/e"]                 # 30 minutes old
    assert [e.repo_id for e in young.entries] == ["lab/d", "acme/c", "lab/b", "acme/a"]
    cut = list_newest(hub, config.zoos[0], config.filters[0], stop_before=None, max_listed=2, now=_at(100))
    assert cut.truncated and [e.repo_id for e in cut.entries] == ["acme/e", "lab/d"]


def _listed(repo: str, hours: float | None, sha: str = "s") -> Listed:
    return Listed(repo, sha, _at(hours) if hours is not None else None, 100)


def test_next_watermark_is_a_low_water_mark():
    listing = Listing(entries=[_listed("x/new", 5), _listed("x/mid", 3), _listed("x/old", 1)])
    start = Watermark(_at(1))
    assert next_watermark(start, listing, []) == Watermark(_at(5), frozenset({("x/new", "s")}))
    assert next_watermark(start, listing, [_listed("x/mid", 3)]).at == _at(3)
    assert next_watermark(start, listing, [_listed("x/mid", 3)]).boundary == frozenset()
    assert next_watermark(start, listing, [_listed("x/odd", None)]) == start
    cut = Listing(entries=listing.entries, truncated=True)
    assert next_watermark(start, cut, []) == start                          # unseen revisions in between
    assert next_watermark(Watermark(), cut, []).at == _at(5)                # a first rescan's window
    assert next_watermark(start, Listing(), []) == start
    tie = Watermark(_at(5), frozenset({("x/other", "s")}))
    assert next_watermark(tie, Listing(entries=[_listed("x/new", 5)]), []).boundary == \
        frozenset({("x/new", "s"), ("x/other", "s")})


def test_watermarks_come_from_completed_rescans_only():
    def manifest(run_id, kind, status, hours):
        return {"run_id": run_id, "kind": kind, "status": status,
                "watermarks": {"fp": {"watermark": _at(hours).isoformat(), "boundary": [["a/b", "s"]]}}}
    found = previous_watermarks([manifest("3", "rescan", "interrupted", 9), manifest("1", "rescan", "completed", 1),
                                 manifest("2", "rescan", "completed", 2), manifest("4", "sweep", "completed", 7)])
    assert found == {"fp": Watermark(_at(2), frozenset({("a/b", "s")}))}


def test_fingerprint_changes_with_filters_preset_and_analyzer_but_not_the_cache():
    base = _parse({"authors": ["acme"], "cache_dir": "/a"})
    other_cache = _parse({"authors": ["acme"], "cache_dir": "/b"})
    other_author = _parse({"authors": ["lab"], "cache_dir": "/a"})

    def fp(config, preset="paper", version="v1"):
        return zoo_fingerprint(config.zoos[0], config.filters[0], preset, version)
    assert fp(base) == fp(other_cache)
    assert len({fp(base), fp(other_author), fp(base, preset="ww"), fp(base, version="v2")}) == 4


# ---- selection and dry runs ---------------------------------------------------------------------


def test_dry_run_selects_without_analysing_or_writing(hub, hub_online, tmp_path, capsys):
    hub.publish("acme/huge", hours=10, seed=50, shapes=[(1024, 512)])
    hub.publish("acme/rare", hours=11, seed=51, downloads=1)
    hub.publish("acme/excluded-x", hours=12, seed=52)
    hub.publish("acme/pickled", hours=13, seed=53)
    (Path(hub.current("acme/pickled")["folder"]) / "model.safetensors").rename(
        Path(hub.current("acme/pickled")["folder"]) / "pytorch_model.bin")
    config = tmp_path / "rescan.yaml"
    config.write_text(rescan_yaml(hub, tmp_path / "out", author="acme", min_downloads=100, max_size="500KB",
                                  exclude=["*excluded*"]))
    result = run_rescan(load_rescan_config(config), client=hub, dry_run=True)
    assert [c.spec.model_id for c in result.selected] == ["acme/a", "acme/c", "acme/e"]   # oldest first
    assert all(c.is_new_model for c in result.selected)
    reasons = {r.repo_id: r.reason for r in result.selection.rejected}
    assert reasons == {"acme/huge": "too large", "acme/rare": "below min_downloads",
                       "acme/excluded-x": "filtered", "acme/pickled": "not analysable"}
    huge = next(r for r in result.selection.rejected if r.repo_id == "acme/huge")
    assert "max_size" in huge.detail
    spec = result.selected[0].spec
    assert spec.size_bytes == (Path(hub.current("acme/a")["folder"]) / "model.safetensors").stat().st_size
    assert spec.params == 128 * 64 + 96 * 64 and spec.revision == hub.current("acme/a")["sha"]
    assert not (tmp_path / "out").exists()
    # the same through the command line
    args = type("Args", (), {"config": str(config), "out": None, "address": None, "max_models": 2,
                             "time_budget": None, "dry_run": True, "report": str(tmp_path / "r.json"),
                             "no_progress": True})()
    assert cmd_rescan(args, client=hub) == 0
    printed = capsys.readouterr().out
    assert "dry-run" in printed and "over the per-night cap" in printed
    report = json.loads((tmp_path / "r.json").read_text())
    assert [p["model_id"] for p in report["pending"]] == ["acme/e"]


def test_known_keys_cost_no_hub_call_and_failures_are_given_up(hub, hub_online, tmp_path):
    from ww_ray.rescan.candidates import Selection, examine
    from ww_ray.zoos.hub import HubZoo

    config = _parse({"author": "acme"}, {"max_failures": 2})
    zoo = HubZoo(config.zoos[0], client=hub)
    listing = list_newest(hub, config.zoos[0], config.filters[0], stop_before=None, max_listed=10, now=_at(99))
    sha = {e.repo_id: e.sha for e in listing.entries}
    history = History(done={("hf", "acme/a", sha["acme/a"])}, failures={("hf", "acme/c", sha["acme/c"]): 2},
                      revisions={("hf", "acme/e"): {"older-sha"}})
    selection = Selection()
    hub.calls.clear()
    for entry in listing.entries:
        examine(0, zoo, config.filters[0], entry, history, 2, selection)
    assert {r.repo_id: r.reason for r in selection.rejected} == {"acme/a": "already analysed", "acme/c": "given up"}
    assert hub.described() == ["acme/e"]
    (candidate,) = selection.candidates
    assert candidate.previous_revisions == ("older-sha",) and not candidate.is_new_model


def test_explicit_models_are_watched_for_new_revisions(hub, hub_online, tmp_path):
    config = tmp_path / "rescan.yaml"
    config.write_text(rescan_yaml(hub, tmp_path / "out", models=["acme/a", "lab/b", "ghost/none"]))
    result = run_rescan(load_rescan_config(config), client=hub, dry_run=True)
    assert [c.spec.model_id for c in result.selected] == ["acme/a", "lab/b"]
    assert [(r.repo_id, r.reason) for r in result.selection.rejected] == [("ghost/none", "unavailable")]
    assert result.zoos[0].explicit


def test_unreachable_hub_is_a_zoo_error_and_keeps_the_watermark(hub_online, tmp_path):
    class Down:
        def list_models(self, **kwargs):
            raise ConnectionError("the Hub cannot be reached")
            yield  # pragma: no cover

    config = tmp_path / "rescan.yaml"
    config.write_text(yaml.safe_dump({"zoos": [{"kind": "hub", "author": "acme"}], "out": str(tmp_path / "out")}))
    result = run_rescan(load_rescan_config(config), client=Down(), progress=False)
    assert result.status == "completed" and result.analysed == []
    assert "ConnectionError" in result.zoos[0].error
    (manifest,) = read_manifests(str(tmp_path / "out"))
    (entry,) = manifest["watermarks"].values()
    assert entry["watermark"] is None and "ConnectionError" in entry["error"]


def test_offline_driver_is_refused(hub_offline, tmp_path):
    config = tmp_path / "rescan.yaml"
    config.write_text(yaml.safe_dump({"zoos": [{"kind": "hub", "author": "acme"}], "out": str(tmp_path / "out")}))
    args = type("Args", (), {"config": str(config), "out": None, "address": None, "max_models": None,
                             "time_budget": None, "dry_run": False, "report": None, "no_progress": True})()
    assert cmd_rescan(args) == 2
