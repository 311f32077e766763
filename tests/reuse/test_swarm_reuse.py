"""A reuse update through `olmix swarm` (stand-in trainer: target loss = 3 - 2 × weight of `wiki`), its resume, and
the `olmix mix reuse|expand` commands."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import olmix_core.stages as stages_module
from olmix_core.cli import cli
from olmix_core.config import EXISTING, ExperimentConfig
from olmix_core.launch.local import LocalLauncher
from olmix_core.reuse import EXPANDED_FILE, PLAN_FILE
from olmix_core.runspec import RunState
from olmix_core.store import SwarmStore
from olmix_core.swarm import run_swarm
from tests.launch.conftest import FAKE_TRAINER, launch_config

OBJECTIVE = "eval/lm/target/CE loss"
WEB = {"name": "web", "topics": [{"name": "science", "paths": ["/data/web/sci/*.bin"]}, {"name": "sports", "paths": ["/data/web/sp/*.bin"]}]}


def _first(tmp_path):
    """The swarm before the update: wiki and code only."""
    sources = [{"name": "wiki", "paths": ["/data/wiki/*.bin"]}, {"name": "code", "paths": ["/data/code/*.bin"]}]
    return launch_config(tmp_path, name="before", variants=6, max_concurrency=4, sources=sources,
                         fit={"filtering": {"objective": OBJECTIVE}, "regression": {"type": "log_linear"}})


def test_update_trains_the_reduced_swarm_and_resumes_without_retraining(tmp_path, fake_env, monkeypatch):
    fake_env.setenv("FAKE_TRAIN_SECONDS", "0.05")
    first = run_swarm(_first(tmp_path), str(tmp_path / "v1"), train_command=FAKE_TRAINER, timeout_s=120)
    previous = tmp_path / "v1" / "proposed_weights.json"
    config = launch_config(tmp_path, name="after", max_concurrency=4, sources=[*_first(tmp_path).model_dump()["sources"], WEB],
                           fit={"filtering": {"objective": OBJECTIVE}, "regression": {"type": "log_linear"}}, reuse={"previous": str(previous)})
    cfg = config.model_dump(mode="json", exclude_none=True)
    cfg.pop("variants")  # unset: the reduced swarm's size
    config = ExperimentConfig.from_dict(cfg)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. Ctrl-C after training, before the fit

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(stages_module, "fit", interrupted)
        run_swarm(config, str(tmp_path / "v2"), group_id="0badcafe", train_command=FAKE_TRAINER, timeout_s=120)
    outcome = run_swarm(config, str(tmp_path / "v2"), group_id="0badcafe", train_command=FAKE_TRAINER, timeout_s=120)

    swarm = SwarmStore.open(config.storage_root, "after", "0badcafe")
    statuses = LocalLauncher(config, swarm).status()
    swarm_runs = swarm.metadata().run_names
    assert len(swarm_runs) == 9  # 3 reduced domains (existing, web:science, web:sports) x 3
    assert all(statuses[n].attempts == 1 and statuses[n].state == RunState.succeeded for n in swarm_runs)  # no retraining
    # runs train on real leaves at the frozen ratios; the table has one `existing` column
    frozen = json.loads(previous.read_text())
    spec = swarm.read_run_files("spec.json")[swarm_runs[0]]
    weights = {m["leaf"]: m["weight"] for m in spec["mixture"]}
    e = weights["wiki"] + weights.get("code", 0.0)
    assert weights["wiki"] == pytest.approx(e * frozen["wiki"], rel=1e-9)
    ratios = pd.read_csv(tmp_path / "v2" / "ratios.csv")
    assert list(ratios.columns) == ["run", "name", EXISTING, "web:science", "web:sports"]
    # the proposal: reduced next to expanded; wiki (only in existing) lowers the loss
    reduced = json.loads((tmp_path / "v2" / "proposed_weights.json").read_text())
    expanded = json.loads((tmp_path / "v2" / EXPANDED_FILE).read_text())
    assert set(reduced) == {EXISTING, "web:science", "web:sports"} and reduced[EXISTING] > 0.9
    assert set(expanded) == {"wiki", "code", "web:science", "web:sports"}
    assert expanded["wiki"] == pytest.approx(reduced[EXISTING] * frozen["wiki"] / (frozen["wiki"] + frozen["code"]))
    assert outcome.proposed_weights == pytest.approx(expanded) and outcome.verify is not None
    assert outcome.verify.proposed_weights.keys() <= set(expanded)
    assert swarm.store.exists(swarm.fit_key(outcome.fit_id, EXPANDED_FILE))
    # lineage: which swarm and fit were reused
    lineage = swarm.metadata().reuse
    assert lineage.previous_swarm == first.group_id and lineage.previous_fit_id == first.fit_id
    assert lineage.frozen == ["code", "wiki"] and lineage.new == ["web:science", "web:sports"]
    assert swarm.store.read_json(swarm.key(PLAN_FILE))["domains"] == [EXISTING, "web:science", "web:sports"]


def test_mix_reuse_and_expand_commands(tmp_path):
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps({"wiki": 0.6, "code": 0.2, "books": 0.2}))
    new = launch_config(tmp_path).model_dump(mode="json", exclude_none=True)
    new.pop("variants")
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new))
    runner = CliRunner()
    res = runner.invoke(cli, ["mix", "reuse", "--config", str(tmp_path / "new.yaml"), "--previous", str(prev),
                              "--recompute", "code", "--output-config", str(tmp_path / "reused.yaml")])
    assert res.exit_code == 0, res.output
    assert "removed: books" in res.output and "recomputed: code" in res.output
    explicit = yaml.safe_load((tmp_path / "reused.yaml").read_text())
    assert explicit["reuse"]["frozen"] == {"wiki": 1.0} and explicit["reuse"]["recompute"] == ["code"]
    assert explicit["variants"] == 12  # existing, code, web:science, web:sports
    (tmp_path / "p.json").write_text(json.dumps({EXISTING: 0.5, "code": 0.2, "web:science": 0.2, "web:sports": 0.1}))
    res = runner.invoke(cli, ["mix", "expand", "--config", str(tmp_path / "reused.yaml"), "--proposal", str(tmp_path / "p.json"),
                              "--output", str(tmp_path / "full.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "full.json").read_text()) == pytest.approx({"wiki": 0.5, "code": 0.2, "web:science": 0.2, "web:sports": 0.1})
    # errors name the flag
    res = runner.invoke(cli, ["mix", "reuse", "--config", str(tmp_path / "new.yaml"), "--previous", str(tmp_path / "nope.json"),
                              "--output-config", str(tmp_path / "x.yaml")])
    assert res.exit_code == 1 and "--previous" in res.output and "not found" in res.output
    res = runner.invoke(cli, ["mix", "expand", "--config", str(tmp_path / "reused.yaml"), "--output", str(tmp_path / "y.json")])
    assert res.exit_code == 1 and "--proposal" in res.output
    # an update that only removes: no swarm; expand writes the final mixture without a proposal
    prev.write_text(json.dumps({"wiki": 0.3, "code": 0.2, "web:science": 0.2, "web:sports": 0.1, "books": 0.2}))
    res = runner.invoke(cli, ["mix", "reuse", "--config", str(tmp_path / "new.yaml"), "--previous", str(prev),
                              "--output-config", str(tmp_path / "removed.yaml")])
    assert res.exit_code == 0 and "no swarm needed" in res.output
    res = runner.invoke(cli, ["mix", "expand", "--config", str(tmp_path / "removed.yaml"), "--output", str(tmp_path / "final.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "final.json").read_text()) == pytest.approx({"wiki": 0.375, "code": 0.25, "web:science": 0.25, "web:sports": 0.125})


def test_removal_only_update_through_swarm_runs_nothing(tmp_path):
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps({"wiki": 0.3, "code": 0.2, "web:science": 0.2, "web:sports": 0.1, "books": 0.2}))
    config = launch_config(tmp_path, reuse={"previous": str(prev)})
    outcome = run_swarm(config, str(tmp_path / "out"))
    assert outcome.runs == {} and outcome.reuse.removed == ["books"] and not outcome.reuse.needs_swarm
    assert outcome.proposed_weights == pytest.approx({"wiki": 0.375, "code": 0.25, "web:science": 0.25, "web:sports": 0.125})
    assert json.loads((tmp_path / "out" / "proposed_weights.json").read_text()) == pytest.approx(outcome.proposed_weights)


def test_launch_commands_plan_the_reduced_swarm(tmp_path):
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps({"code": 0.5, "web:science": 0.3, "web:sports": 0.2}))
    cfg = launch_config(tmp_path, reuse={"previous": str(prev)}).model_dump(mode="json", exclude_none=True)
    cfg.pop("variants")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(cli, ["launch", "validate", "--config", str(tmp_path / "c.yaml")])
    assert res.exit_code == 0, res.output
    assert "swarm over 2 domains: existing, wiki; 6 variants" in res.output and "(6 variants can be sampled)" in res.output
    res = CliRunner().invoke(cli, ["launch", "run", "--config", str(tmp_path / "c.yaml"), "--dry-run", "--specs-out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    specs = json.loads((tmp_path / "s.json").read_text())
    assert len(specs) == 6 and all({m["leaf"] for m in s["mixture"]} <= {"wiki", "code", "web:science", "web:sports"} for s in specs)
    prev.write_text(json.dumps({"wiki": 0.3, "code": 0.2, "web:science": 0.2, "web:sports": 0.1, "books": 0.2}))
    res = CliRunner().invoke(cli, ["launch", "run", "--config", str(tmp_path / "c.yaml")])
    assert res.exit_code == 1 and "only removes leaves" in res.output
