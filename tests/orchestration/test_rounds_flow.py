"""Adaptive rounds in the `olmix` flow: each round a sub-flow (fit → next batch → append → submit → poll), the last
round's fit verified, the summary showing every round; a re-run resumes from the cache and submits nothing."""

from __future__ import annotations

import pytest

from flows.swarm import swarm
from olmix_core.launch.inprocess import submission_log
from olmix_core.store import SwarmStore
from tests.orchestration._helpers import FAST, artifacts, swarm_config

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_two_rounds_in_one_flow_run_resume_from_the_cache(tmp_path):
    cfg = swarm_config(tmp_path / "store", variants=8)
    params = dict(config=cfg, group_id="000000a1", launcher="inprocess", poll_interval=0.1, launcher_options=FAST,
                  rounds=2, round_variants=3)
    state = swarm(return_state=True, **params)
    assert state.is_completed(), state.message
    out = state.result()
    assert [r["round"] for r in out["rounds"]] == [0, 1] and [r["runs"] for r in out["rounds"]] == [8, 11]
    assert out["rounds"][0]["next_expected_improvement"] >= 0 and len(out["rounds"][0]["next_runs"]) == 3
    assert out["verification"]["n_runs"] == 11 and out["verification"]["verify_run"].endswith("-0011")
    store = SwarmStore.open(str(tmp_path / "store"), "test-swarm", "000000a1")
    specs = store.read_run_files("spec.json")
    assert sorted(n for n, s in specs.items() if s.get("round") == 1) == out["rounds"][0]["next_runs"]
    summary = artifacts(["olmix-000000a1-summary"])["olmix-000000a1-summary"]
    assert "## Rounds (adaptive swarm)" in summary.data and "| 1 | 11 |" in summary.data

    submitted = len(submission_log(store))
    again = swarm(return_state=True, **params)
    assert again.is_completed(), again.message
    assert again.result()["rounds"] == out["rounds"] and again.result()["verification"] == out["verification"]
    assert len(submission_log(store)) == submitted
