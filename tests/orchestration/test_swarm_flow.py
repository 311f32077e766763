"""The `olmix` flow under a Prefect test server, with simulated runs (the in-process launcher and its known law)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from flows.swarm import swarm
from olmix_core.config import ExperimentConfig
from olmix_core.launch.inprocess import submission_log
from olmix_core.store import SwarmStore
from tests.orchestration._helpers import FAST, artifacts, swarm_config, task_runs

pytestmark = pytest.mark.usefixtures("prefect_api")


def run_swarm(**params):
    state = swarm(return_state=True, **params)
    return state, (state.result() if state.is_completed() else None)


def test_swarm_end_to_end_with_preemptions(tmp_path):
    cfg = swarm_config(tmp_path / "store")
    state, out = run_swarm(config=cfg, group_id="00000010", launcher="inprocess", poll_interval=0.1,
                           launcher_options={**FAST, "preempt_fraction": 0.25})  # 4 of this group's 12 runs get preempted
    assert state.is_completed(), state.message
    gid = out["group_id"]
    swarm_store = SwarmStore.open(str(tmp_path / "store"), "test-swarm", gid)
    store = swarm_store.store

    # every stage's output is in the store under the group id
    for key in ["priors.json", "mixtures.json", "config.yaml", "metadata.json", "results/ratios.csv", "results/metrics.csv",
                f"eval_scripts/olmix-{gid}.sh", f"fits/{out['fit_id']}/proposed_weights.json", f"fits/{out['fit_id']}/verify.json"]:
        assert store.exists(swarm_store.key(key)), key
    assert len(store.read_json(swarm_store.key("mixtures.json"))) == 12
    statuses = swarm_store.read_run_files("status.json")
    swarm_runs = [f"test-swarm-{gid}-{i:04d}" for i in range(12)]
    assert all(statuses[r]["state"] == "succeeded" for r in swarm_runs)

    # preempted runs were resubmitted exactly once; no run was submitted twice at the same attempt
    log = submission_log(swarm_store)
    per_run = {r: sorted(e["attempt"] for e in log if e["run"] == r) for r in swarm_runs}
    resubmitted = [r for r, attempts in per_run.items() if attempts == [1, 2]]
    assert len(resubmitted) == 4 and all(a in ([1], [1, 2]) for a in per_run.values())
    assert all(statuses[r]["attempts"] == 2 for r in resubmitted)

    # the proposal beats the swarm on the known law; the verify run confirms it
    v = out["verification"]
    assert v["at_or_below_median"] and v["actual_objective"] <= v["swarm_median_objective"] and v["n_runs"] == 12
    assert v["actual_objective"] == pytest.approx(out["predicted_objective"], rel=0.05)
    assert abs(sum(out["proposal"].values()) - 1) < 1e-6
    stored = store.read_json(swarm_store.fit_key(out["fit_id"], "proposed_weights.json"))
    assert stored == pytest.approx(out["proposal"])

    # the flow run is named after the swarm; task runs say what they work on
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        fr = client.read_flow_run(flow_run_id)
    assert fr.name == f"test-swarm-{gid}" and f"group:{gid}" in fr.tags
    names = set(task_runs(flow_run_id, expect=("count priors", "sample", "submit", "poll", "pull", "eval script")))
    assert {f"count priors test-swarm/{gid}", f"sample 12 mixtures test-swarm/{gid}", f"submit inprocess test-swarm/{gid}",
            f"poll test-swarm/{gid}", f"pull local results test-swarm/{gid}", f"eval script olmix-{gid}.sh"} <= names

    # UI artifacts: mixtures, run statuses, progress at 100 %, fit scores, proposal vs prior, summary
    keys = [f"olmix-{gid}-{k}" for k in ("mixtures", "runs", "progress", "fit", "proposal", "summary")]
    arts = artifacts(keys)
    assert set(arts) == set(keys)
    assert float(arts[f"olmix-{gid}-progress"].data) == 100.0
    runs_table = json.loads(arts[f"olmix-{gid}-runs"].data)
    assert {row["run"] for row in runs_table} >= set(swarm_runs) and all(row["state"] == "succeeded" for row in runs_table)
    assert [row["purpose"] for row in runs_table].count("verify") == 1 and len(runs_table) == 13  # the verify run too
    for row in runs_table:  # simulated steps and loss, where each run's folder and log are
        assert row["step"] == "100/100" and float(row["train loss"]) > 0 and row["elapsed"]
        assert row["folder"] == swarm_store.url("runs", row["run"]) and row["log"].endswith(f"runs/{row['run']}/train.log")
    assert {row["attempt"] for row in runs_table if row["run"] in resubmitted} == {2}
    # live artifacts are updated in place: one card per key in this flow run, not one per poll
    with get_client(sync_client=True) as client:
        for what in ("summary", "runs", "progress"):
            versions = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"olmix-{gid}-{what}"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
            assert len(versions) == 1, what
    summary = arts[f"olmix-{gid}-summary"].data
    assert "**Stage: done**" in summary and "13 succeeded" in summary
    plots = re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,", summary)  # embedded: the UI renders data: images
    assert "plots/proposed_vs_prior" in plots and len(plots) >= 2, plots
    proposal_table = json.loads(arts[f"olmix-{gid}-proposal"].data)
    assert {row["leaf"] for row in proposal_table} == set(ExperimentConfig.from_dict(cfg).leaf_names())
    assert "verified" in arts[f"olmix-{gid}-summary"].data and out["fit_id"] in arts[f"olmix-{gid}-summary"].data
    fit_rows = json.loads(arts[f"olmix-{gid}-fit"].data)
    assert any(row["chosen"] == "yes" and row["metric"] == "eval/lm/target/CE loss" for row in fit_rows)


def test_rerun_with_same_group_id_comes_from_cache(tmp_path):
    cfg = swarm_config(tmp_path / "store", variants=8)
    params = dict(config=cfg, launcher="inprocess", poll_interval=0.1, launcher_options=FAST)
    state1, out1 = run_swarm(**params)
    gid = out1["group_id"]
    swarm_store = SwarmStore.open(str(tmp_path / "store"), "test-swarm", gid)
    submissions = len(submission_log(swarm_store))
    state2, out2 = run_swarm(group_id=gid, **params)
    assert state2.is_completed()
    stages = ("count priors", "sample 8 mixtures", "write 8 run specs", "submit inprocess", "poll", "fit", "propose", "verify")
    runs = task_runs(state2.state_details.flow_run_id, expect=stages)
    cached = {name for name, r in runs.items() if r.state.name == "Cached"}
    for stage in stages:
        assert any(name.startswith(stage) for name in cached), (stage, sorted(cached))
    assert len(submission_log(swarm_store)) == submissions  # nothing submitted again
    assert out2["proposal"] == out1["proposal"] and out2["fit_id"] == out1["fit_id"]
    assert out2["verification"] == out1["verification"]
    # cached results live in the olmix store, under the swarm's folder
    assert any(p.name.startswith("submit-runs-") for p in Path(swarm_store.store.path(swarm_store.key("_prefect"))).iterdir())


def test_group_id_is_derived_from_the_flow_run_so_retries_resume(tmp_path):
    """Without a group id, the id comes from the flow run id: a retry of that flow run (from the UI) finds its swarm."""
    import hashlib

    cfg = swarm_config(tmp_path / "store", variants=8)
    state, out = run_swarm(config=cfg, launcher="inprocess", poll_interval=0.1, launcher_options=FAST, verify=False)
    flow_run_id = state.state_details.flow_run_id
    assert out["group_id"] == hashlib.sha256(f"olmix-group:{flow_run_id}".encode()).hexdigest()[:8]


def test_failed_runs_are_resubmitted_up_to_max_attempts(tmp_path):
    cfg = swarm_config(tmp_path / "store", variants=8, max_attempts=2)
    doomed = "test-swarm-0000000a-0003"
    state, out = run_swarm(config=cfg, group_id="0000000a", launcher="inprocess", poll_interval=0.1, verify=False,
                           launcher_options={**FAST, "always_fail": [doomed], "fail_fraction": 0.2})
    assert state.is_completed(), state.message
    assert out["failed"] == [doomed] and out["succeeded"] == 7
    swarm_store = SwarmStore.open(str(tmp_path / "store"), "test-swarm", "0000000a")
    assert [e["attempt"] for e in submission_log(swarm_store) if e["run"] == doomed] == [1, 2]
    assert swarm_store.read_run_files("status.json")[doomed]["state"] == "failed"
    assert out["results"] == 7  # the fit used the runs that succeeded


def test_poll_timeout_is_a_clear_failed_state_without_retries(tmp_path):
    cfg = swarm_config(tmp_path / "store", variants=4)
    state, _ = run_swarm(config=cfg, group_id="0000000b", launcher="inprocess", poll_interval=0.1, timeout_s=0.5,
                         launcher_options={"run_s": 60})
    assert state.is_failed()
    poll = task_runs(state.state_details.flow_run_id, expect=("poll",))["poll test-swarm/0000000b"]
    assert poll.state.is_failed() and poll.run_count == 1
    assert "4 of 4 runs unfinished after 0s" in poll.state.message and "group_id=0000000b" in poll.state.message
    # the flow's final state says how to resume, and so does the summary
    stored_config = SwarmStore.open(str(tmp_path / "store"), "test-swarm", "0000000b").url("config.yaml")
    assert f"prefect deployment run olmix/swarm --param group_id=0000000b --param config={stored_config}" in state.message
    assert f"olmix swarm --config {stored_config} --group-id 0000000b" in state.message
    summary = artifacts(["olmix-0000000b-summary"])["olmix-0000000b-summary"].data
    assert "**Stage: failed**" in summary and "PollTimeout" in summary and "--param group_id=0000000b" in summary


def test_bad_config_fails_at_once(tmp_path):
    state, _ = run_swarm(config=swarm_config(tmp_path, variants=0), launcher="inprocess")
    assert state.is_failed() and "variants must be > 0" in state.message
    assert task_runs(state.state_details.flow_run_id, timeout_s=1.0) == {}


def test_bad_input_in_a_stage_is_not_retried(tmp_path):
    mixtures = tmp_path / "mixtures.json"
    mixtures.write_text(json.dumps([{"wiki": 0.5, "nope": 0.5}]))
    state, _ = run_swarm(config=swarm_config(tmp_path / "store", variants=1), group_id="0000000c", launcher="inprocess",
                         mixtures_file=str(mixtures))
    assert state.is_failed()
    sample = task_runs(state.state_details.flow_run_id, expect=("sample",))["sample 1 mixtures test-swarm/0000000c"]
    assert sample.state.is_failed() and sample.run_count == 1 and "nope" in sample.state.message


def test_outside_world_failures_are_retried(tmp_path, monkeypatch):
    import flows.swarm
    from olmix_core.stages import setup as swarm_setup
    from tasks.setup import count_priors

    calls = []
    real = swarm_setup.store_priors

    def flaky(config, swarm):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("storage unreachable")
        return real(config, swarm)

    monkeypatch.setattr(swarm_setup, "store_priors", flaky)
    monkeypatch.setattr(flows.swarm, "count_priors", count_priors.with_options(retry_delay_seconds=0))
    state, _ = run_swarm(config=swarm_config(tmp_path / "store", variants=8), group_id="0000000d", launcher="inprocess",
                         launcher_options=FAST, poll_interval=0.1, verify=False)
    assert state.is_completed(), state.message
    assert task_runs(state.state_details.flow_run_id, expect=("count priors",))["count priors test-swarm/0000000d"].run_count == 2 and len(calls) == 2


def test_no_wait_submits_and_returns(tmp_path):
    state, out = run_swarm(config=swarm_config(tmp_path / "store", variants=4), group_id="0000000e", launcher="inprocess",
                           launcher_options={"run_s": 30}, wait=False)
    assert state.is_completed() and out["status"] == "submitted"
    swarm_store = SwarmStore.open(str(tmp_path / "store"), "test-swarm", "0000000e")
    assert {s["state"] for s in swarm_store.read_run_files("status.json").values()} == {"running"}
    assert swarm_store.metadata().orchestration.open is True
