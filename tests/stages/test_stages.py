"""The stages of a swarm as plain library calls (no Prefect): what `olmix swarm`, `olmix launch run` and the flows
compose. Runs are simulated by the in-process launcher (a known mixing law), so a whole cycle takes seconds."""

from __future__ import annotations

import json

import pytest

from olmix_core import stages
from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.fit.predicted import read_predicted
from olmix_core.launch.inprocess import InProcessLauncher, InProcessOptions, submission_log
from olmix_core.runspec import RunProgress, RunState, RunStatus
from olmix_core.stages.runs import PollProgress
from olmix_core.stages.watch import landed_results, mark_seen
from olmix_core.store import SwarmStore
from tests.conftest import minimal_config

OBJECTIVE = "eval/lm/target/CE loss"


def _config(tmp_path, **overrides) -> ExperimentConfig:
    fields = {"variants": 10, "fit": {"regression_type": "log_linear", "objective": OBJECTIVE}, **overrides}
    cfg = minimal_config(storage_root=str(tmp_path / "store"), **fields)
    return ExperimentConfig.from_dict(cfg)


def _stored_files(swarm: SwarmStore) -> list[str]:
    root = swarm.store.path(swarm.prefix)
    return sorted(p[len(root):] for p in swarm.store.fs.find(root)) if swarm.store.fs.exists(root) else []


def test_dry_run_prepares_the_same_specs_and_writes_nothing(tmp_path):
    config = _config(tmp_path)
    dry = stages.prepare(config, "00000d01", dry_run=True)
    assert dry.dry_run and len(dry.specs) == config.variants and _stored_files(dry.swarm) == []
    real = stages.prepare(config, "00000d01")
    assert [s.model_dump() for s in real.specs] == [s.model_dump() for s in dry.specs]
    assert real.mixtures == dry.mixtures and real.priors == dry.priors
    stored = _stored_files(real.swarm)
    assert {"/priors.json", "/mixtures.json", "/config.yaml", "/metadata.json"} <= set(stored)
    assert real.swarm.metadata().run_names == real.run_names
    again = stages.prepare(config, "00000d01", dry_run=True)  # an existing group: its stored mixtures
    assert again.mixtures == real.mixtures and _stored_files(again.swarm) == stored


def test_given_mixtures_must_match_a_groups_stored_ones(tmp_path):
    config = _config(tmp_path, variants=2)
    prepared = stages.prepare(config, "00000d02")
    other = [{leaf: [1.0 / len(config.leaf_names())] for leaf in config.leaf_names()}] * 2
    for dry_run in (True, False):
        with pytest.raises(ConfigError, match="^mixtures: group 00000d02 already has different mixtures") as e:
            stages.prepare(config, "00000d02", mixtures=other, dry_run=dry_run)
        assert e.value.fields == ("mixtures",)
    assert stages.prepare(config, "00000d02", mixtures=prepared.mixtures).mixtures == prepared.mixtures


def test_the_whole_cycle_composes_from_stage_functions(tmp_path):
    config = _config(tmp_path)
    prepared = stages.prepare(config, "00000d03", launcher="inprocess")
    swarm = prepared.swarm
    launcher = InProcessLauncher(config, swarm, InProcessOptions(run_s=0.05, jitter=0.0))
    submitted = stages.submit_runs(config, swarm, prepared.run_names, launcher)
    assert set(submitted) == set(prepared.run_names)
    assert swarm.metadata().launcher == "inprocess"

    seen: list[int] = []
    polled = stages.poll(config, swarm, launcher, prepared.run_names, poll_s=0.02, timeout_s=60,
                         on_round=lambda st, unfinished: seen.append(len(unfinished)))
    assert sorted(polled.succeeded) == sorted(prepared.run_names) and polled.failed == []
    assert polled.rounds == len(seen) and seen[-1] == 0 and polled.status_calls == polled.rounds

    script = stages.emit_eval_script(config, swarm, prepared.specs)
    assert swarm.store.exists(swarm.eval_script_key()) and swarm.metadata().eval_script == script

    pulled = stages.pull(config, swarm, "local")
    assert sorted(pulled.report.included) == sorted(prepared.run_names) and len(pulled.tables_sha256) == 64
    assert stages.up_to_date(swarm, pulled) is None  # never fitted

    fit = stages.fit(config, swarm)
    assert fit.runs == config.variants and fit.metrics == [OBJECTIVE] and fit.chosen == {OBJECTIVE: "log_linear"}
    assert swarm.store.read_text(swarm.fit_key(fit.fit_id, "metrics.csv")) == swarm.store.read_text(swarm.results_key("metrics.csv"))
    assert stages.fit(config, swarm).fit_id == fit.fit_id  # same tables and options, same fit

    proposal = stages.propose(config, swarm, fit.fit_id)
    assert sum(proposal.weights.values()) == pytest.approx(1.0)
    perf = read_predicted(proposal.predicted_url)  # the typed file and the summary agree
    assert perf.objective.predicted == pytest.approx(proposal.predicted_objective)
    assert perf.predicted_metrics() == pytest.approx(proposal.predicted)
    assert proposal.objective == OBJECTIVE and proposal.prior == pytest.approx(perf.prior_weights)

    verified = stages.verify(config, swarm, launcher, proposal, timeout_s=60)
    assert verified.verify_run not in prepared.run_names and verified.fit_id == fit.fit_id
    assert verified.predicted_objective == pytest.approx(proposal.predicted_objective)
    assert json.loads(swarm.store.read_text(swarm.fit_key(fit.fit_id, stages.VERIFY_FILE)))["rank"] == verified.rank
    assert swarm.metadata().verify_runs == [verified.verify_run]
    runs_before = len(submission_log(swarm))
    assert stages.verify(config, swarm, launcher, proposal, timeout_s=60).verify_run == verified.verify_run
    assert len(submission_log(swarm)) == runs_before  # an unchanged proposal reuses its verify run

    last = stages.record_fit(swarm, pulled, fit, proposal, verified.actual_objective)
    assert swarm.metadata().last_fit == last and last.tables_sha256 == pulled.tables_sha256
    assert stages.up_to_date(swarm, stages.pull(config, swarm, "local")) == last  # the verify run is not in the tables


def test_poll_raises_when_no_run_succeeded(tmp_path):
    config = _config(tmp_path, variants=2, max_attempts=1)
    prepared = stages.prepare(config, "00000d04", launcher="inprocess")
    launcher = InProcessLauncher(config, prepared.swarm, InProcessOptions(run_s=0.02, always_fail=prepared.run_names))
    stages.submit_swarm(config, prepared.swarm, prepared.specs, launcher)
    with pytest.raises(stages.NoRunSucceeded, match="group 00000d04: no run succeeded") as e:
        stages.poll(config, prepared.swarm, launcher, prepared.run_names, poll_s=0.02, timeout_s=30)
    assert e.value.group_id == "00000d04"
    pulled = stages.pull(config, prepared.swarm, "local")
    assert pulled.report.failed == sorted(prepared.run_names) and not pulled.still_open
    with pytest.raises(stages.NoResults, match="group 00000d04: no run has local results yet .* 2 failed"):
        pulled.require_results()


@pytest.mark.parametrize("eval_mode, launcher, source", [
    ("offline", "beaker", "dashboard"), ("offline", "local", "dashboard"), ("inloop", "beaker", "wandb"),
    ("inloop", "local", "local"), ("inloop", "inprocess", "local"),
])
def test_results_source_follows_eval_mode_and_launcher(eval_mode, launcher, source):
    assert stages.results_source(eval_mode, launcher) == source


def test_make_launcher_names_the_parameter_at_fault(tmp_path):
    config = _config(tmp_path, variants=2)
    swarm = stages.open_swarm(config, "00000d05")
    with pytest.raises(ConfigError, match="^launcher_options: only the inprocess launcher"):
        stages.make_launcher("local", config, swarm, {"run_s": 1})
    with pytest.raises(ConfigError, match="^launcher 'slurm' is not one of"):
        stages.make_launcher("slurm", config, swarm)
    with pytest.raises(ConfigError, match="^group_id: ") as e:
        stages.open_swarm(config, "../etc")
    assert e.value.fields == ("group_id",)


def _st(name, state, attempts=1):
    return RunStatus(run_name=name, state=state, attempts=attempts, launcher="inprocess", updated="t")


def test_poll_progress_reports_only_what_changed():
    now = [0.0]
    watch = PollProgress(show_every_s=3.0, clock=lambda: now[0])
    first = watch.observe({"a": _st("a", RunState.running), "b": _st("b", RunState.submitted)}, ["a", "b"])
    assert first.states == "1 running, 1 submitted" and first.show_due and first.resubmitted == {}
    same = watch.observe({"a": _st("a", RunState.running), "b": _st("b", RunState.submitted)}, ["a", "b"])
    assert same.states is None and not same.show_due
    now[0] = 1.0  # a run reported steps, but the view was shown 1 s ago
    stepped = {"a": _st("a", RunState.running).model_copy(update={"progress": RunProgress(step=5, total_steps=10)}),
               "b": _st("b", RunState.submitted)}
    assert not watch.observe(stepped, ["a", "b"]).show_due
    now[0] = 4.0
    assert watch.observe(stepped, ["a", "b"]).show_due  # steps changed since the last view: due now
    news = watch.observe({"a": _st("a", RunState.succeeded), "b": _st("b", RunState.submitted, attempts=2)}, ["b"])
    assert news.states == "1 submitted, 1 succeeded" and not news.show_due and news.resubmitted == {"b": 2}


def test_watch_reports_new_results_once(tmp_path):
    config = _config(tmp_path, variants=3)
    prepared = stages.prepare(config, "00000d06", launcher="inprocess")
    swarm = prepared.swarm
    root = str(tmp_path / "store")
    assert landed_results(root) == []  # not open
    from olmix_core.metadata import update_metadata

    update_metadata(swarm, orchestration={"open": True, "results_source": "local"})
    assert landed_results(root) == []  # open, nothing landed
    launcher = InProcessLauncher(config, swarm, InProcessOptions(run_s=0.01, jitter=0.0))
    stages.submit_swarm(config, swarm, prepared.specs, launcher)
    stages.poll(config, swarm, launcher, prepared.run_names, poll_s=0.02, timeout_s=30)
    [(found, landed)] = landed_results(root)
    assert found.group_id == "00000d06" and landed.results == 3 and landed.source == "local"
    mark_seen(swarm, landed)
    assert landed_results(root) == [] and swarm.metadata().orchestration.watch.results == 3
    assert landed_results(root, group_ids=["ffffffff"]) == []
