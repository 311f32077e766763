"""metadata.json: one typed model, one writer (olmix_core.metadata)."""

import json

import pytest

from olmix_core.metadata import LastFit, SwarmMetadata, update_metadata
from olmix_core.store import ArtifactStore, SwarmStore


@pytest.fixture
def sw(tmp_path):
    return SwarmStore(ArtifactStore(str(tmp_path / "store")), "demo", "0a1b2c3d")


def _stored(sw):
    return json.loads(sw.store.read_text(sw.key(SwarmStore.METADATA)))


def test_updates_merge_and_only_declared_fields_are_written(sw):
    assert sw.metadata() == SwarmMetadata()  # none yet
    update_metadata(sw, launcher="local")
    update_metadata(sw, run_names=["a"])
    stored = _stored(sw)
    assert {k: v for k, v in stored.items() if k != "updated"} == {"launcher": "local", "run_names": ["a"]}
    assert stored["updated"]
    meta = sw.metadata()
    assert meta.launcher == "local" and meta.run_names == ["a"] and meta.verify_runs == []
    with pytest.raises(TypeError, match="no fields"):
        update_metadata(sw, launcher_kind="local")
    with pytest.raises(ValueError):
        update_metadata(sw, run_names="not a list")
    assert _stored(sw)["run_names"] == ["a"]  # a rejected update writes nothing


def test_orchestration_is_merged_not_replaced(sw):
    update_metadata(sw, orchestration={"open": True, "results_source": "dashboard"})
    update_metadata(sw, orchestration={"last_check": "2026-01-01T00:00:00+00:00"})
    orch = sw.metadata().orchestration
    assert orch.open is True and orch.results_source == "dashboard" and orch.last_check.startswith("2026")


def test_one_last_fit_from_older_files(sw):
    key = sw.key(SwarmStore.METADATA)
    sw.store.write_json(key, {"last_fit": "fit-0000abcd", "verify": {"rank": 1}, "orchestration": {"open": False}})
    assert sw.metadata().last_fit == LastFit(fit_id="fit-0000abcd")
    sw.store.write_json(key, {"last_fit": "fit-0000abcd", "orchestration": {"open": True, "last_fit": {
        "fit_id": "fit-1111abcd", "tables_sha256": "ab", "runs": 3, "time": "t", "predicted_objective": 1.5}}})
    meta = sw.metadata()
    assert meta.last_fit.fit_id == "fit-1111abcd" and meta.last_fit.runs == 3  # the flows' record, which the re-fit compared
    sw.store.write_json(key, {"orchestration": {"open": True, "last_fit": {"fit_id": "fit-1111abcd", "tables_sha256": "ab"}}})
    meta = sw.metadata()
    assert meta.last_fit.fit_id == "fit-1111abcd" and meta.last_fit.tables_sha256 == "ab" and meta.orchestration.open
    update_metadata(sw, launcher="local")
    stored = _stored(sw)
    assert stored["last_fit"]["fit_id"] == "fit-1111abcd" and "last_fit" not in stored["orchestration"]


def test_unknown_keys_of_newer_files_are_kept(sw):
    sw.store.write_json(sw.key(SwarmStore.METADATA), {"launcher": "beaker", "from_the_future": {"x": 1}})
    update_metadata(sw, run_names=["a"])
    assert _stored(sw)["from_the_future"] == {"x": 1}
