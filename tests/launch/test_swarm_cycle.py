"""`olmix swarm`: the local cycle. Fast: the stand-in trainer (target loss = 3 - 2 * weight of `wiki`), so the fit
has a known answer. Slow: real olmo-core training on the demo data."""

from __future__ import annotations

import json
import os
import re
import time

import pytest
import yaml
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.config import ExperimentConfig
from olmix_core.launch.local import LocalLauncher
from olmix_core.runspec import RunState
from olmix_core.stages import fit_options
from olmix_core.swarm import demo_data_dir, run_swarm
from tests.launch.conftest import FAKE_TRAINER, launch_config

OBJECTIVE = "eval/lm/target/CE loss"


def _fake_config(tmp_path, **overrides):
    return launch_config(tmp_path, variants=10, max_concurrency=4, fit={"objective": OBJECTIVE, "regression_type": "log_linear"}, **overrides)


def test_run_swarm_with_stand_in_trainer_proposes_and_verifies(tmp_path, fake_env):
    fake_env.setenv("FAKE_TRAIN_SECONDS", "0.05")
    config = _fake_config(tmp_path)
    out = tmp_path / "out"
    messages: list[str] = []
    outcome = run_swarm(config, str(out), train_command=FAKE_TRAINER, timeout_s=120, progress=messages.append)
    for name in ("mixtures.json", "ratios.csv", "metrics.csv", "pull_report.json", "proposed_weights.json",
                 "predicted_performance.json", "fit_report.json", "verify.json"):
        assert (out / name).is_file(), name
    assert len(outcome.included_runs) == 10
    verify = json.loads((out / "verify.json").read_text())
    # wiki lowers the loss, and its cap is 1 (2M tokens for a 1M-token run): the proposal is all wiki
    assert outcome.proposed_weights["wiki"] > 0.95
    assert verify["actual_objective"] == pytest.approx(3 - 2 * outcome.verify.proposed_weights["wiki"])
    assert verify["rank"] == 1 and verify["n_runs"] == 10 and verify["at_or_below_median"]
    assert verify["actual_objective"] <= verify["swarm_best_objective"] <= verify["swarm_median_objective"]
    assert verify["predicted_objective"] == pytest.approx(verify["actual_objective"], abs=0.05)
    # the verify run is the next variant, marked as such, and kept out of the fit's tables
    assert verify["verify_run"].endswith("-0010")
    spec = LocalLauncher(config, _swarm(config, outcome.group_id)).swarm.read_run_files("spec.json")[verify["verify_run"]]
    assert spec["purpose"] == "verify"
    assert verify["verify_run"] not in (out / "ratios.csv").read_text()
    # the fit folder is in the store too
    swarm = _swarm(config, outcome.group_id)
    assert swarm.store.exists(swarm.fit_key(outcome.fit_id, "verify.json"))
    assert swarm.store.exists(swarm.fit_key(outcome.fit_id, "proposed_weights.json"))
    assert swarm.metadata().verify_runs == [verify["verify_run"]]
    assert any("verify run" in m for m in messages)

    # resuming the group trains nothing new and reuses the verify run
    again = run_swarm(config, str(out), group_id=outcome.group_id, train_command=FAKE_TRAINER, timeout_s=120)
    assert again.verify.verify_run == verify["verify_run"] and again.fit_id == outcome.fit_id
    statuses = LocalLauncher(config, swarm).status()
    assert all(s.attempts == 1 and s.state == RunState.succeeded for s in statuses.values())


def _swarm(config, group_id):
    from olmix_core.store import SwarmStore

    return SwarmStore.open(config.storage_root, config.name, group_id)


def test_no_verify_stops_after_the_proposal(tmp_path, fake_env):
    fake_env.setenv("FAKE_TRAIN_SECONDS", "0.05")
    outcome = run_swarm(_fake_config(tmp_path), verify=False, train_command=FAKE_TRAINER, timeout_s=120)
    assert outcome.verify is None and outcome.proposed_weights
    assert "verify" not in outcome.seconds
    assert os.path.exists(outcome.files["proposed_weights"])


def test_fit_options_carry_the_configs_caps_and_objective(tmp_path):
    config = launch_config(tmp_path, repetition_factor=2.0, fixed_source_weights={"code": 0.1},
                           sources=[{"name": "wiki", "paths": ["/w"], "max_repetition_factor": 4.0},
                                    {"name": "code", "paths": ["/c"]}],
                           priors={"token_counts": {"wiki": 10**6, "code": 10**6}}, fit={"objective": OBJECTIVE, "maximize": []})
    opts = fit_options(config)
    assert opts.constraints.repetition_factor == {"wiki": 2.0, "code": 1.0}
    assert opts.constraints.fixed_weights == {"code": 0.1}
    assert opts.constraints.target_tokens == config.target_tokens and opts.filtering.objective == OBJECTIVE
    assert opts.seed == config.seed
    from olmix_core.fit import FitOptions

    assert FitOptions.from_dict(opts.model_dump(mode="json")) == opts  # a plain FitOptions, round-trips


def test_fixed_weight_of_a_source_with_topics_is_not_silently_dropped(tmp_path, caplog):
    config = launch_config(tmp_path, fixed_source_weights={"web": 0.3},
                           sources=[{"name": "wiki", "paths": ["/w"]},
                                    {"name": "web", "topics": [{"name": "x", "paths": ["/x"]}, {"name": "y", "paths": ["/y"]}]}],
                           priors={"token_counts": {"wiki": 10**6, "web:x": 10**6, "web:y": 10**6}})
    with caplog.at_level("WARNING", logger="olmix_core.stages.fits"):
        opts = fit_options(config)
    assert opts.constraints.fixed_weights == {}
    assert "web" in caplog.text and "--fixed-weight" in caplog.text


def test_demo_data_dir_only_for_configs_entirely_on_demo_data(tmp_path):
    demo = launch_config(tmp_path, sources=[{"name": "a", "paths": [".olmix/demo-data/train/a/*.bin"]}],
                         priors={"token_counts": {"a": 10**7}}, eval_sources={"t": [".olmix/demo-data/val/t.bin"]})
    assert demo_data_dir(demo) == ".olmix/demo-data"
    mixed = launch_config(tmp_path, sources=[{"name": "a", "paths": [".olmix/demo-data/train/a/*.bin"]}],
                          priors={"token_counts": {"a": 10**7}}, eval_sources={"t": ["/data/val/t.bin"]})
    assert demo_data_dir(mixed) is None
    assert demo_data_dir(launch_config(tmp_path)) is None


def _local_tiny(tmp_path, variants: int, steps: int) -> str:
    """configs/examples/local-tiny.yaml with its data and store under tmp_path, fewer variants and steps."""
    with open(os.path.join(os.path.dirname(__file__), "../../configs/examples/local-tiny.yaml")) as f:
        cfg = yaml.safe_load(f)
    text = json.dumps(cfg).replace(".olmix/demo-data", str(tmp_path / "demo-data"))
    cfg = json.loads(text)
    batch = cfg["training"]["global_batch_size"]
    cfg.update(variants=variants, max_tokens=steps * batch, storage_root=str(tmp_path / "store"))
    filtering = cfg["fit"]["filtering"]
    filtering["metrics"] = [filtering["objective"]]
    path = tmp_path / "local-tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ExperimentConfig.from_yaml(path)
    return str(path)


@pytest.mark.slow
def test_launch_group_with_real_trainer(tmp_path):
    """Two real runs side by side: results, statuses with exit codes and memory, resubmit skips them."""
    path = _local_tiny(tmp_path, variants=2, steps=20)
    from olmix_core.demo_data import ensure_demo_data

    ensure_demo_data(tmp_path / "demo-data")
    runner = CliRunner()
    r = runner.invoke(cli, ["launch", "run", "--config", path, "--wait", "--eval-script-dir", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    group = re.search(r"group ([0-9a-f]{8})", r.output).group(1)
    config = ExperimentConfig.from_yaml(path)
    swarm = _swarm(config, group)
    results = swarm.read_run_files("result.json")
    assert len(results) == 2 and all(res["steps"] == 20 for res in results.values())
    assert all(OBJECTIVE in res["metrics"] for res in results.values())
    statuses = LocalLauncher(config, swarm).status()
    assert all(s.extra["exit_code"] == 0 and s.extra["max_rss_mb"] > 50 for s in statuses.values())
    again = runner.invoke(cli, ["launch", "run", "--config", path, "--group-id", group, "--eval-script-dir", str(tmp_path / "ev")])
    assert again.exit_code == 0 and "2 runs: 2 succeeded" in again.output
    assert LocalLauncher(config, swarm).status() == statuses


@pytest.mark.slow
def test_olmix_swarm_end_to_end_on_local_tiny(tmp_path):
    """The whole cycle with real training: 8 variants (the fit needs more runs than domains), 40 steps."""
    path = _local_tiny(tmp_path, variants=8, steps=40)
    out = tmp_path / "out"
    started = time.monotonic()
    r = CliRunner().invoke(cli, ["swarm", "--config", path, "--output-dir", str(out)])
    assert r.exit_code == 0, r.output
    for name in ("mixtures.json", "ratios.csv", "metrics.csv", "proposed_weights.json", "predicted_performance.json", "verify.json"):
        assert (out / name).is_file(), name
    verify = json.loads((out / "verify.json").read_text())
    assert verify["n_runs"] == 8 and 1 <= verify["rank"] <= 9
    assert verify["actual_objective"] > 0 and verify["predicted_objective"] is not None
    assert "verify (" in r.output and "rank" in r.output
    assert time.monotonic() - started < 400
