"""A reuse update as one `olmix/swarm` flow run (Prefect test server, simulated runs with a known law)."""

from __future__ import annotations

import json

import pytest

from flows.swarm import swarm
from olmix_core.config import EXISTING
from olmix_core.reuse import EXPANDED_FILE
from olmix_core.store import SwarmStore
from tests.orchestration._helpers import FAST, artifacts, swarm_config

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]

FROZEN = {"code": 0.2, "web:science": 0.6, "web:sports": 0.2}


def test_flow_runs_the_reduced_swarm_and_records_the_lineage(tmp_path):
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps(FROZEN))
    cfg = swarm_config(tmp_path / "store", reuse={"previous": str(prev)})
    cfg.pop("variants")  # unset: 3 per reduced domain (existing, wiki)
    state = swarm(config=cfg, group_id="00000e01", launcher="inprocess", poll_interval=0.1, launcher_options=FAST, return_state=True)
    assert state.is_completed(), state.message
    out = state.result()
    store = SwarmStore.open(str(tmp_path / "store"), "test-swarm", "00000e01")
    assert len(store.metadata().run_names) == 6
    ratios = store.store.read_text(store.results_key("ratios.csv")).splitlines()[0]
    assert ratios == f"run,name,{EXISTING},wiki"
    # the flow's proposal is over every leaf: existing's share at the frozen ratios
    reduced = store.store.read_json(store.fit_key(out["fit_id"], "proposed_weights.json"))
    expanded = store.store.read_json(store.fit_key(out["fit_id"], EXPANDED_FILE))
    assert set(reduced) == {EXISTING, "wiki"}
    assert out["proposal"] == pytest.approx(expanded)
    for leaf, r in FROZEN.items():
        assert expanded[leaf] == pytest.approx(reduced[EXISTING] * r)
    assert out["verification"]["proposed_weights"].keys() <= expanded.keys()
    lineage = store.metadata().reuse
    assert lineage.previous == str(prev) and lineage.frozen == sorted(FROZEN) and lineage.new == ["wiki"]
    summary = artifacts(["olmix-00000e01-summary"])["olmix-00000e01-summary"].data
    assert "reuse (partial)" in summary and str(prev) in summary
