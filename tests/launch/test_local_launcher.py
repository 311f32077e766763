"""The local launcher against the stand-in trainer: real subprocesses, real supervisor, statuses in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from olmix_core.errors import LaunchError
from olmix_core.launch import get_launcher
from olmix_core.launch.local import LocalLauncher, default_concurrency, pid_alive
from olmix_core.runspec import RunState, RunStatus
from olmix_core.stages.setup import prepare_swarm
from tests.launch.conftest import FAKE_TRAINER, launch_config, wait_supervisor_exit


def _launcher(tmp_path, variants=3, max_concurrency=2, **overrides):
    config = launch_config(tmp_path, variants=variants, **overrides)
    swarm, specs = prepare_swarm(config)
    return LocalLauncher(config, swarm, train_command=FAKE_TRAINER, max_concurrency=max_concurrency, poll_s=0.1), specs


def _max_overlap(intervals):
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    return peak


def test_group_runs_with_concurrency_limit_threads_and_logs(tmp_path, fake_env):
    fake_env.setenv("FAKE_TRAIN_SECONDS", "1.0")
    launcher, specs = _launcher(tmp_path, variants=3, max_concurrency=2, training={"threads_per_run": 3})
    first = launcher.submit(specs)
    assert {s.state for s in first.values()} == {RunState.submitted}
    final = launcher.wait(timeout_s=60)
    assert set(final) == {s.run_name for s in specs}
    assert all(s.state == RunState.succeeded and s.attempts == 1 for s in final.values()), final
    results = launcher.swarm.read_run_files("result.json")
    fake = [results[s.run_name]["fake"] for s in specs]
    assert {f["omp_threads"] for f in fake} == {"3"} and {f["mkl_threads"] for f in fake} == {"3"}
    assert _max_overlap([(f["started"], f["ended"]) for f in fake]) <= 2
    for s in specs:
        st = final[s.run_name]
        assert st.job_id == str(results[s.run_name]["fake"]["pid"])
        assert st.extra["exit_code"] == 0 and st.extra["wall_s"] > 0.9 and st.extra["max_rss_mb"] > 1
        log = launcher.swarm.store.read_text(launcher.swarm.run_key(s.run_name, "train.log"))
        assert "attempt 1" in log and f"fake training {s.run_name}" in log


def test_resubmit_skips_running_and_succeeded_runs(tmp_path, fake_env):
    launcher, specs = _launcher(tmp_path, variants=3, max_concurrency=3)
    launcher.submit(specs[:2])
    launcher.wait(runs=[s.run_name for s in specs[:2]], timeout_s=60)
    wait_supervisor_exit(launcher)
    done = launcher.status()
    assert set(done) == {s.run_name for s in specs}  # the third has a spec but was never submitted
    assert done[specs[2].run_name].state == RunState.pending
    with pytest.raises(LaunchError, match="never submitted"):
        launcher.wait(timeout_s=5)
    again = launcher.submit(specs)
    for s in specs[:2]:
        assert again[s.run_name] == done[s.run_name]  # untouched: same attempt, pid, timestamps
    final = launcher.wait(timeout_s=60)
    assert all(s.state == RunState.succeeded for s in final.values())
    for s in specs[:2]:
        log = launcher.swarm.store.read_text(launcher.swarm.run_key(s.run_name, "train.log"))
        assert log.count("=== olmix local launcher") == 1


def test_failure_is_reported_and_resubmit_counts_an_attempt(tmp_path, fake_env):
    launcher, specs = _launcher(tmp_path, variants=2)
    bad = specs[1].run_name
    fake_env.setenv("FAKE_TRAIN_FAIL", bad)
    launcher.submit(specs)
    first = launcher.wait(timeout_s=60)
    wait_supervisor_exit(launcher)
    assert first[specs[0].run_name].state == RunState.succeeded
    assert first[bad].state == RunState.failed
    assert "exit code 3" in first[bad].reason and f"fake failure in {bad}" in first[bad].reason
    fake_env.delenv("FAKE_TRAIN_FAIL")
    assert launcher.submit(specs)[bad].state == RunState.failed  # submit leaves failed runs to resubmit
    retried = launcher.resubmit(specs)
    assert retried[bad].state == RunState.submitted and retried[bad].attempts == 2
    assert retried[specs[0].run_name].attempts == 1
    final = launcher.wait(timeout_s=60)
    assert final[bad].state == RunState.succeeded and final[bad].attempts == 2 and final[bad].reason is None


def test_cancel_kills_running_and_drops_queued_then_resubmit_reruns(tmp_path, fake_env):
    fake_env.setenv("FAKE_TRAIN_SECONDS", "60")
    launcher, specs = _launcher(tmp_path, variants=3, max_concurrency=1)
    launcher.submit(specs)
    deadline = time.monotonic() + 30
    while not any(s.state == RunState.running and s.job_id for s in launcher.status().values()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    running = next(s for s in launcher.status().values() if s.state == RunState.running)
    pid = int(running.job_id)
    # status from another process, as `olmix launch status` would read it
    other = subprocess.run(
        [sys.executable, "-c", (
            "import json,sys; from olmix_core.store import SwarmStore; from olmix_core.launch.local import LocalLauncher;"
            "from olmix_core.config import ExperimentConfig as C; c=C.from_yaml(sys.argv[1]);"
            "s=SwarmStore.open(c.storage_root, c.name, sys.argv[2]);"
            "print(json.dumps({k: v.state.value for k, v in LocalLauncher(c, s).status().items()}))"
        ), launcher.swarm.store.path(launcher.swarm.key("config.yaml")), launcher.swarm.group_id],
        capture_output=True, text=True, check=True,
    )
    states = json.loads(other.stdout)
    assert sorted(states.values()) == ["running", "submitted", "submitted"]

    canceled = launcher.cancel()
    assert {s.state for s in canceled.values()} == {RunState.canceled}
    deadline = time.monotonic() + 10
    while pid_alive(pid):
        assert time.monotonic() < deadline, "canceled run still alive"
        time.sleep(0.1)
    wait_supervisor_exit(launcher)
    after = launcher.status()
    assert {s.state for s in after.values()} == {RunState.canceled}
    assert not launcher.swarm.read_run_files("result.json")

    fake_env.setenv("FAKE_TRAIN_SECONDS", "0.2")
    launcher.resubmit(specs)
    final = launcher.wait(timeout_s=60)
    assert all(s.state == RunState.succeeded and s.attempts == 2 for s in final.values())


def test_dead_process_without_result_is_failed_and_with_result_succeeded(tmp_path, fake_env):
    launcher, specs = _launcher(tmp_path, variants=2)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for spec in specs:
        st = RunStatus(run_name=spec.run_name, state=RunState.running, attempts=1, launcher="local", job_id=str(gone.pid),
                       extra={"host": launcher.host})
        launcher.swarm.store.write_json(launcher.swarm.run_key(spec.run_name, "status.json"), st.model_dump(mode="json"))
    launcher.swarm.store.write_json(launcher.swarm.run_key(specs[1].run_name, "result.json"), {"metrics": {}})
    statuses = launcher.status()
    assert statuses[specs[0].run_name].state == RunState.failed
    assert "process died" in statuses[specs[0].run_name].reason
    assert statuses[specs[1].run_name].state == RunState.succeeded
    # recorded, so every later reader agrees
    stored = launcher.swarm.read_run_files("status.json")
    assert stored[specs[0].run_name]["state"] == "failed"


def test_dead_process_submitted_before_a_cancel_is_canceled_not_failed(tmp_path, fake_env):
    """`cancel()` reads the statuses after writing its marker; a run its supervisor already killed (process gone,
    final status not yet written) is canceled by the same rule the supervisor applies, not failed."""
    from olmix_core.launch.local import CANCEL_KEY

    launcher, specs = _launcher(tmp_path, variants=2)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    t = time.time()
    for spec, submitted in zip(specs, (t - 10, t + 10)):
        st = RunStatus(run_name=spec.run_name, state=RunState.running, attempts=1, launcher="local", job_id=str(gone.pid),
                       extra={"host": launcher.host, "submitted_at": submitted})
        launcher.swarm.store.write_json(launcher.swarm.run_key(spec.run_name, "status.json"), st.model_dump(mode="json"))
    launcher.swarm.store.write_json(launcher.swarm.key(CANCEL_KEY), {"time": t})
    statuses = launcher.status()
    assert statuses[specs[0].run_name].state == RunState.canceled
    assert statuses[specs[1].run_name].state == RunState.failed  # resubmitted after the cancel: its death is a failure
    assert launcher.swarm.read_run_files("status.json")[specs[0].run_name]["state"] == "canceled"


def test_queue_left_by_a_dead_supervisor_resumes(tmp_path, fake_env):
    launcher, specs = _launcher(tmp_path, variants=2)
    for spec in specs:
        st = RunStatus(run_name=spec.run_name, state=RunState.submitted, attempts=1, launcher="local",
                       extra={"host": launcher.host, "submitted_at": time.time()})
        launcher.swarm.store.write_json(launcher.swarm.run_key(spec.run_name, "status.json"), st.model_dump(mode="json"))
    stalled = launcher.status()
    assert all("no supervisor" in s.reason for s in stalled.values())
    launcher.submit(specs)
    final = launcher.wait(timeout_s=60)
    assert all(s.state == RunState.succeeded and s.attempts == 1 for s in final.values())


def test_pid_alive_rejects_a_reused_pid():
    assert pid_alive(os.getpid())
    assert not pid_alive(os.getpid(), expect="some-run-name-that-is-not-in-my-cmdline")


def test_default_concurrency_and_registry(tmp_path):
    config = launch_config(tmp_path, training={"threads_per_run": 1})
    cores = len(os.sched_getaffinity(0))
    assert default_concurrency(config) == cores
    assert default_concurrency(launch_config(tmp_path, training={"threads_per_run": 64})) == 1
    assert default_concurrency(launch_config(tmp_path, max_concurrency=7)) == 7
    swarm, _ = prepare_swarm(config)
    assert isinstance(get_launcher("local", config, swarm), LocalLauncher)


@pytest.mark.parametrize("name", ["x; rm -rf ~", "$(touch pwned)"])
def test_names_cannot_carry_shell_syntax(tmp_path, name):
    from olmix_core.errors import ConfigError

    with pytest.raises(ConfigError):
        launch_config(tmp_path, name=name)


def test_local_runs_with_an_s3_store(tmp_path, fake_env, s3_endpoint):
    """Specs, statuses, results and logs in S3 (a local moto server); the runs and the queue on this machine."""
    config = launch_config(tmp_path, variants=2, storage_root=f"{s3_endpoint}/olmix")
    swarm, specs = prepare_swarm(config)
    assert specs[0].result_url.startswith("s3://")
    launcher = LocalLauncher(config, swarm, train_command=FAKE_TRAINER, max_concurrency=2, poll_s=0.2)
    launcher.submit(specs)
    final = launcher.wait(timeout_s=90)
    assert all(s.state == RunState.succeeded and s.extra["exit_code"] == 0 for s in final.values())
    wait_supervisor_exit(launcher)
    for spec in specs:
        assert "fake training" in swarm.store.read_text(swarm.run_key(spec.run_name, "train.log"))
    assert set(swarm.read_run_files("result.json")) == {s.run_name for s in specs}
