"""The local launcher's supervisor on a real S3 store (moto in its own process) that is paused mid-run."""

from __future__ import annotations

import time

import pytest

from olmix_core.launch.local import SUPERVISOR_LOG_KEY, LocalLauncher, _local_log_path
from olmix_core.runspec import RunState, read_statuses
from olmix_core.stages.setup import prepare_swarm
from tests.launch.conftest import FAKE_TRAINER, launch_config


def _wait_for(what, predicate, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_supervisor_rides_out_a_paused_store_and_uploads_the_logs(s3_process, fake_env, tmp_path):
    config = launch_config(tmp_path, variants=2, storage_root=f"s3://{s3_process.bucket}/olmix")
    swarm, specs = prepare_swarm(config)
    # for the supervisor and the trainers: store calls fail within ~4 s while the endpoint is paused (the defaults
    # take a few times longer); training outlasts the pause, so only the supervisor meets it
    for k, v in {"OLMIX_S3_CONNECT_TIMEOUT": "2", "OLMIX_S3_READ_TIMEOUT": "2", "OLMIX_S3_ATTEMPTS": "1", "OLMIX_STORE_CALL_TIMEOUT": "4"}.items():
        fake_env.setenv(k, v)
    fake_env.setenv("FAKE_TRAIN_SECONDS", "15")
    launcher = LocalLauncher(config, swarm, train_command=FAKE_TRAINER, max_concurrency=1, poll_s=0.2)
    launcher.submit(specs)
    first = specs[0].run_name
    first_log = _local_log_path(swarm, f"runs/{first}/train.log")
    _wait_for("the first run to start training", lambda: first_log.exists() and f"fake training {first}" in first_log.read_text())

    s3_process.pause()  # while the first run trains; the second waits in the queue
    time.sleep(9)
    s3_process.resume()

    assert launcher.supervisor is not None and launcher.supervisor.poll() is None, "the supervisor died during the outage"
    final = _wait_for("both runs to succeed", lambda: (lambda st: st if len(st) == 2 and all(
        s.state == RunState.succeeded and "exit_code" in s.extra for s in st.values()) else None)(read_statuses(swarm)))
    assert launcher.supervisor.wait(timeout=60) == 0
    assert {s.attempts for s in final.values()} == {1}  # nothing trained twice
    for spec in specs:  # the logs reached the store, the first one after the outage
        assert f"fake training {spec.run_name}" in swarm.store.read_text(swarm.run_key(spec.run_name, "train.log"))
    log = _local_log_path(swarm, SUPERVISOR_LOG_KEY).read_text()
    assert "store error" in log and "store reachable again" in log, log
    assert log.count(" for s3://") == 1, log  # one supervisor all along: never restarted
