"""Run statuses in the store: one reader and one writer shared by every launcher."""

import pytest

from olmix_core.errors import ArtifactCorrupt
from olmix_core.runspec import RunState, RunStatus, parse_status, read_statuses, write_status
from olmix_core.store import ArtifactStore, SwarmStore


def test_write_then_read_in_bulk(tmp_path):
    swarm = SwarmStore(ArtifactStore(str(tmp_path)), "s", "0a1b2c3d")
    old = RunStatus(run_name="s-0a1b2c3d-0000", updated="2000-01-01T00:00:00+00:00")
    new = write_status(swarm, old, state=RunState.running, attempts=2)
    assert (new.state, new.attempts) == (RunState.running, 2) and new.updated > old.updated
    write_status(swarm, RunStatus(run_name="s-0a1b2c3d-0001", state=RunState.failed, reason="boom"))
    stored = read_statuses(swarm)
    assert stored["s-0a1b2c3d-0000"] == new
    assert stored["s-0a1b2c3d-0001"].reason == "boom"


def test_an_invalid_status_names_its_file_and_hides_nothing_else(tmp_path):
    swarm = SwarmStore(ArtifactStore(str(tmp_path)), "s", "0a1b2c3d")
    swarm.store.write_json(swarm.run_key("s-0a1b2c3d-0003", "status.json"), {"run_name": "s-0a1b2c3d-0003", "state": "exploded"})
    swarm.store.write_bytes(swarm.run_key("s-0a1b2c3d-0004", "status.json"), b'{"run_name": "s-0a1b2c3d-00')
    write_status(swarm, RunStatus(run_name="s-0a1b2c3d-0005", state=RunState.succeeded))
    with pytest.raises(ArtifactCorrupt, match=r"s-0a1b2c3d-0003/status.json: invalid run status"):
        parse_status(swarm, "s-0a1b2c3d-0003", {"run_name": "s-0a1b2c3d-0003", "state": "exploded"})
    stored = read_statuses(swarm)
    assert stored["s-0a1b2c3d-0005"].state == RunState.succeeded
    for run, why in (("s-0a1b2c3d-0003", "invalid run status"), ("s-0a1b2c3d-0004", "corrupt JSON")):
        st = stored[run]
        assert st.state == RunState.failed and st.extra["unreadable"] and st.reason.startswith("unreadable status.json")
        assert f"{run}/status.json: {why}" in st.reason
