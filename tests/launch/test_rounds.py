"""`olmix swarm --rounds`: sampled swarm → fit → next batch → ... in one group, resumable, stopping early when the
next batch's expected improvement is below `min_improvement`. Stand-in trainer: target loss = 3 - 2 × wiki."""

from __future__ import annotations

from click.testing import CliRunner

from olmix_core.fit.predicted import read_predicted
from olmix_core.launch.local import LocalLauncher
from olmix_core.runspec import RunState
from olmix_core.store import SwarmStore
from olmix_core.swarm import run_swarm
from tests.launch.conftest import FAKE_TRAINER
from tests.launch.test_swarm_cycle import _fake_config


def test_two_rounds_append_a_batch_verify_the_last_fit_and_resume(tmp_path, fake_env):
    fake_env.setenv("FAKE_TRAIN_SECONDS", "0.05")
    config = _fake_config(tmp_path)  # 10 variants
    out = run_swarm(config, str(tmp_path / "out"), train_command=FAKE_TRAINER, timeout_s=300, rounds=2, round_variants=3)
    assert [r["round"] for r in out.rounds] == [0, 1]
    assert [r["runs"] for r in out.rounds] == [10, 13]
    assert out.rounds[0]["next_expected_improvement"] >= 0 and out.rounds[0]["proposal_std"] > 0
    assert len(out.rounds[0]["next_runs"]) == 3 and out.rounds[1]["next_runs"] == []
    assert all(r["predicted_objective"] is not None for r in out.rounds)
    assert len(out.included_runs) == 13
    swarm = SwarmStore.open(config.storage_root, config.name, out.group_id)
    specs = swarm.read_run_files("spec.json")
    appended = sorted(n for n, s in specs.items() if s.get("round") == 1)
    assert appended == out.rounds[0]["next_runs"] == [f"{config.name}-{out.group_id}-00{i}" for i in (10, 11, 12)]
    assert out.verify is not None and out.verify.verify_run.endswith("-0013") and out.verify.n_runs == 13
    assert out.fit_id == out.rounds[1]["fit_id"] != out.rounds[0]["fit_id"]
    # the fit with appended rounds is proposed by the residual-GP posterior mean; the sampled swarm's fit is not
    proposers = {k: read_predicted(swarm.url("fits", k, "predicted_performance.json")).proposer
                 for k in (out.rounds[0]["fit_id"], out.fit_id)}
    assert proposers[out.fit_id] == "posterior" != proposers[out.rounds[0]["fit_id"]]

    again = run_swarm(config, str(tmp_path / "out"), group_id=out.group_id, train_command=FAKE_TRAINER, timeout_s=300,
                      rounds=2, round_variants=3)
    assert again.rounds == out.rounds and again.verify.verify_run == out.verify.verify_run
    assert sorted(swarm.read_run_files("spec.json")) == sorted(specs)
    statuses = LocalLauncher(config, swarm).status()
    assert all(s.attempts == 1 and s.state == RunState.succeeded for s in statuses.values())


def test_rounds_stop_when_the_expected_improvement_is_below_min_improvement(tmp_path, fake_env):
    fake_env.setenv("FAKE_TRAIN_SECONDS", "0.05")
    config = _fake_config(tmp_path)
    out = run_swarm(config, train_command=FAKE_TRAINER, timeout_s=300, rounds=3, round_variants=2, min_improvement=1e6,
                    verify=False)
    assert len(out.rounds) == 1 and "min_improvement" in out.rounds[0]["stopped"]
    assert out.rounds[0]["next_expected_improvement"] < 1e6
    specs = SwarmStore.open(config.storage_root, config.name, out.group_id).read_run_files("spec.json")
    assert len(specs) == 10 and all(s.get("round", 0) == 0 for s in specs.values())


def test_swarm_cli_rejects_bad_rounds(tmp_path):
    from olmix_core.cli import cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text(_fake_config(tmp_path).to_yaml())
    r = CliRunner().invoke(cli, ["swarm", "--config", str(cfg), "--rounds", "0"])
    assert r.exit_code == 1 and "--rounds must be >= 1" in r.output
