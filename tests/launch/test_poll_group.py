"""poll_group: the one polling loop behind the flow's poll task and `olmix swarm` (no Prefect here)."""

from __future__ import annotations

import pytest

from olmix_core.config import ExperimentConfig
from olmix_core.launch.inprocess import InProcessLauncher, InProcessOptions, submission_log
from olmix_core.launch.wait import PollTimeout, poll_group
from olmix_core.runspec import RunState
from olmix_core.stages import setup as swarm_setup
from tests.conftest import minimal_config


class CountingLauncher(InProcessLauncher):
    status_calls = 0

    def status(self):
        CountingLauncher.status_calls += 1
        return super().status()


def _group(tmp_path, max_attempts=3, **options):
    cfg = ExperimentConfig.from_dict(minimal_config(storage_root=str(tmp_path), variants=6, max_attempts=max_attempts))
    swarm, specs = swarm_setup.prepare_swarm(cfg, "0badcafe")
    CountingLauncher.status_calls = 0
    launcher = CountingLauncher(cfg, swarm, InProcessOptions(**options))
    launcher.submit(specs)
    by_name = {s.run_name: s for s in specs}
    return cfg, launcher, by_name


def test_preempted_and_failed_runs_are_resubmitted_up_to_the_limit(tmp_path):
    doomed = "test-swarm-0badcafe-0002"
    cfg, launcher, by_name = _group(tmp_path, run_s=0.05, jitter=0.0, preempt_fraction=0.5, always_fail=[doomed])
    rounds = []
    result = poll_group(launcher, list(by_name), cfg.max_attempts, lambda ns: [by_name[n] for n in ns], 0.02,
                        on_round=lambda st, unfinished: rounds.append(len(unfinished)))
    assert result.failed == [doomed] and result.statuses[doomed].attempts == cfg.max_attempts
    assert set(result.succeeded) == set(by_name) - {doomed}
    assert result.resubmitted[doomed] == cfg.max_attempts - 1
    preempted_once = [n for n, k in result.resubmitted.items() if n != doomed]
    assert preempted_once and all(result.statuses[n].attempts == 2 for n in preempted_once)
    log = submission_log(launcher.swarm)
    assert len(log) == len(by_name) + sum(result.resubmitted.values())  # every submission accounted for, none twice
    assert CountingLauncher.status_calls == result.rounds == len(rounds)  # one batched status call per round
    assert rounds[-1] == 0


def test_timeout_names_the_unfinished_runs(tmp_path):
    cfg, launcher, by_name = _group(tmp_path, run_s=30.0, jitter=0.0)
    with pytest.raises(PollTimeout, match="6 of 6 runs unfinished .* group_id=0badcafe"):
        poll_group(launcher, list(by_name), cfg.max_attempts, lambda ns: [by_name[n] for n in ns], 0.02, timeout_s=0.1)
    assert {s.state for s in launcher.status().values()} == {RunState.running}  # runs keep going
