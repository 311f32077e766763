import json
import os

import pytest

from olmix_core.errors import ArtifactCorrupt, ArtifactMissing
from olmix_core.store import ArtifactStore, SwarmStore, find_swarm


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "store"))
    return ArtifactStore(request.getfixturevalue("s3_endpoint") + "/prefix")


def test_write_read_list(store):
    store.write_json("sw/0a1b2c3d/priors.json", {"token_counts": {"a": 1}})
    store.write_text("sw/0a1b2c3d/eval_scripts/olmix-0a1b2c3d.sh", "#!/bin/bash\n")
    assert store.read_json("sw/0a1b2c3d/priors.json") == {"token_counts": {"a": 1}}
    assert store.list("sw/0a1b2c3d") == ["eval_scripts", "priors.json"]
    assert store.exists("sw/0a1b2c3d/priors.json") and not store.exists("sw/0a1b2c3d/nope.json")
    store.write_json("sw/0a1b2c3d/priors.json", {"v": 2})
    assert store.read_json("sw/0a1b2c3d/priors.json") == {"v": 2}


def test_missing_vs_corrupt(store):
    with pytest.raises(ArtifactMissing, match="not found"):
        store.read_json("x/missing.json")
    store.write_text("x/bad.json", "{not json")
    with pytest.raises(ArtifactCorrupt, match="bad.json"):
        store.read_json("x/bad.json")
    assert store.read_json_or("x/missing.json", 5) == 5


def test_swarm_layout_and_bulk_reads(store):
    sw = SwarmStore(store, "demo", "0a1b2c3d")
    for i in range(3):
        store.write_json(sw.run_key(f"demo-0a1b2c3d-000{i}", "status.json"), {"state": "succeeded", "i": i})
    store.write_json(sw.run_key("demo-0a1b2c3d-0003", "spec.json"), {})
    statuses = sw.read_run_files("status.json")
    assert sorted(statuses) == [f"demo-0a1b2c3d-000{i}" for i in range(3)]
    assert statuses["demo-0a1b2c3d-0002"]["i"] == 2
    assert sw.run_names() == [f"demo-0a1b2c3d-000{i}" for i in range(4)]
    assert find_swarm(store.root_url, "0a1b2c3d").name == "demo"
    with pytest.raises(ArtifactMissing):
        find_swarm(store.root_url, "ffffffff")


def test_local_writes_are_atomic(tmp_path):
    store = ArtifactStore(str(tmp_path))
    store.write_json("a.json", {"x": 1})
    assert [f for f in os.listdir(tmp_path) if ".tmp-" in f] == []
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_keys_cannot_escape_root(tmp_path):
    with pytest.raises(ValueError):
        ArtifactStore(str(tmp_path)).write_text("../evil", "x")


def test_swarm_rejects_unsafe_names(tmp_path):
    with pytest.raises(ValueError):
        SwarmStore(ArtifactStore(str(tmp_path)), "a/b", "0a1b2c3d")
